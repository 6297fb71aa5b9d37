"""Record the golden histories of two runs sharing a lock, and of the lock itself
(tests/golden/test_replay.py replays them).

    .venv/bin/python tests/golden/record_locks.py

On a fresh in-memory dev server, with the run store on: `locked-run` holds the lock
`golden` for its whole length (a run lock); `locked-step` asks for it for one step,
waits in line behind it, and takes it when the first run ends. Saved as
locked-run.locks, locked-step.locks and golden.qlrf-lock (the lock's workflow).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden.recording import record, save_history, servers  # noqa: E402
from tests.helpers.waiting import eventually_async  # noqa: E402

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
    from runner.client.runs import start
    from runner.contract import lock_workflow_id
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    async with servers() as up:
        client, tmp = up.client, up.tmp
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
        await save_history("locked-run.locks", handles[0])
        await save_history("locked-step.locks", handles[1])
        await save_history("golden.qlrf-lock", lock)


async def until_lock(lock: object, *, waiting: bool) -> None:
    """Until the lock has a holder (and, with `waiting`, a waiter)."""

    async def held() -> bool:
        state = await lock.query("state")  # type: ignore[attr-defined]
        return bool(state["holder"] and (state["waiters"] or not waiting))

    await eventually_async(
        held, "the lock has its holder and waiter", poll=0.05, ignoring=(Exception,)
    )


if __name__ == "__main__":
    record(main)
