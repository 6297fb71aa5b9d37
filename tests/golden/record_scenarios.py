"""Record the golden histories of tests/golden/runbooks/ (cancels, failures, timeouts, control).

    .venv/bin/python tests/golden/record_scenarios.py [--suffix before-engine] [NAME...]

Each runbook runs on a fresh in-memory dev server, with the action its scenario
needs (a cancel, live control); its history, and those of its fan-out batches, are
saved as NAME[.SUFFIX].history.json beside this script.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden.recording import save, save_history, servers  # noqa: E402
from tests.helpers.waiting import eventually_async  # noqa: E402


async def _state(handle) -> dict:
    found: dict = await eventually_async(
        lambda: handle.query("state"), "the run answers", poll=0.1, ignoring=(Exception,)
    )
    return found


async def _until(handle, test, what: str) -> dict:
    async def reached() -> dict | None:
        state = await _state(handle)
        return state if test(state) else None

    found: dict = await eventually_async(reached, what, poll=0.1)
    return found


async def _cancel_when_long_runs(handle) -> None:
    await _until(handle, lambda s: s["steps"]["long"]["status"] == "running", "long running")
    await asyncio.sleep(0.5)
    await handle.cancel()


def _items_done(state: dict) -> int:
    waves = (state["steps"]["patch"].get("fanout") or {}).get("waves") or []
    return sum(w["succeeded"] for w in waves)


async def _steer(handle) -> None:
    await _until(handle, lambda s: s["steps"]["patch"].get("fanout"), "fan-out started")
    await asyncio.sleep(0.6)
    await handle.execute_update("control", {"action": "pause", "by": "alice", "comment": "look"})
    await asyncio.sleep(1.0)
    await handle.execute_update("control", {"action": "resume", "by": "alice", "comment": ""})
    await handle.execute_update(
        "control", {"action": "concurrency", "step": "patch", "concurrency": 2, "by": "bob"}
    )
    await handle.execute_update(
        "control", {"action": "skip", "step": "patch", "items": ["h6"], "by": "bob"}
    )


SCENARIOS = {
    "cancel-midway": (_cancel_when_long_runs, []),
    "cancel-midway-timed": (_cancel_when_long_runs, []),
    "failure-rules": (None, []),
    "run-timeout": (None, []),
    # Before per-wave budgets the failed canary was tolerated and `rest` ran; now it is not.
    "canary-fails": (None, ["patch.canary.1", "patch.rest.1"]),
    "fanout-control": (_steer, ["patch.all.1"]),
}


async def main(names: list[str], suffix: str) -> None:
    from temporalio.service import RPCError

    from tests.helpers.runs import run_runbook

    tail = f".{suffix}" if suffix else ""
    async with servers() as up:
        for name in names or SCENARIOS:
            action, batches = SCENARIOS[name]
            outcome = await run_runbook(
                up.address,
                HERE / "runbooks" / f"{name}.yaml",
                workflow_id=name,
                while_running=action,
            )
            steps = {sid: s["status"] for sid, s in outcome.state["steps"].items()}
            save(f"{name}{tail}", outcome.history_json, f"{outcome.state['status']} {steps}")
            for batch in batches:
                handle = up.client.get_workflow_handle(f"{name}.{batch}")
                try:
                    await save_history(f"{name}{tail}.batch-{batch.replace('.', '-')}", handle)
                except RPCError:
                    continue  # this version never ran that batch (a campaign that stopped)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--suffix", default="")
    args = parser.parse_args()
    asyncio.run(main(args.names, args.suffix))
