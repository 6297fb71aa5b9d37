"""Record the golden history of a redrive (tests/golden/test_replay.py replays it).

    .venv/bin/python tests/golden/record_redrive.py

On a fresh in-memory dev server, with the run store on: a three-step runbook fails
at its second step, the failure is fixed, and the run is redriven as
`redrive.r1`, which keeps the first step. Saved as redrive.r1.history.json.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden.recording import record, save_history, servers  # noqa: E402

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
    from temporalio.client import WorkflowFailureError

    from runner.client import redrive
    from runner.client.runs import start
    from runner.pipeline import compile_file
    from runner.plan import redrive as plan_redrive
    from runner.worker import build_worker

    async with servers() as up:
        client, tmp = up.client, up.tmp
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
        await save_history("redrive.r1", again)


if __name__ == "__main__":
    record(main)
