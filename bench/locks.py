"""Benchmark: how long a lock takes to pass from one run to the next.

One dev server, one worker with the real shell step. N+1 runs of one runbook share
the lock `db:bench`; each run's one step writes the time it starts, sleeps a little
and writes the time it ends. The runs queue at the lock and go one after another.
A hand-off is the time from one run's step end to the next run's step start: the
step's activity completing, its run giving the key back, the lock granting it to
the next run, and that run scheduling and starting its step. The figure is the
median over N hand-offs (goal: at most 1 s on the embedded server).

For scale, the same is measured between two steps of one run without a lock (the
gap from one step's end to the next step's start), alternated with the locked runs.

Run: .venv/bin/python bench/locks.py [--handoffs 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LOCKED = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
inputs:
  label: {{type: string, required: true}}
locks: ["db:{key}"]
steps:
  - id: work
    type: shell
    with:
      script: |
        echo "start {{{{ inputs.label }}}} $(date +%s.%N)" >> {log}
        sleep 0.1
        echo "end {{{{ inputs.label }}}} $(date +%s.%N)" >> {log}
"""
CHAINED_STEP = """\
  - id: s{i}
    type: shell
    with:
      script: |
        echo "start {i} $(date +%s.%N)" >> {log}
        sleep 0.1
        echo "end {i} $(date +%s.%N)" >> {log}
"""


def gaps(log: Path) -> list[float]:
    """From each `end` to the next `start`, in the order written."""
    rows = [line.split() for line in log.read_text().splitlines()]
    found = []
    for before, after in itertools.pairwise(rows):
        if before[0] == "end" and after[0] == "start":
            found.append(float(after[2]) - float(before[2]))
    starts = [r for r in rows if r[0] == "start"]
    ends = [r for r in rows if r[0] == "end"]
    # one holder at a time: every start follows the previous end
    assert len(found) == len(starts) - 1 == len(ends) - 1, "runs overlapped"
    return found


async def locked_round(client, queue: str, tmp: Path, handoffs: int) -> list[float]:
    from runner.client.runs import start
    from runner.pipeline import compile_file

    log = tmp / f"locked-{uuid.uuid4().hex[:6]}.log"
    path = tmp / "locked.yaml"
    path.write_text(LOCKED.format(name="bench-lock", key=uuid.uuid4().hex[:8], log=log))
    handles = []
    for i in range(handoffs + 1):
        compiled = compile_file(path, [f"label=r{i}"])
        handle, _ = await start(
            client,
            compiled.plan,
            compiled.inputs,
            "bench",
            workflow_id=f"bench-lock-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            record=False,
        )
        handles.append(handle)
    for handle in handles:
        await handle.result()
    return gaps(log)


async def chained_round(client, queue: str, tmp: Path, handoffs: int) -> list[float]:
    from runner.client.runs import start
    from runner.pipeline import compile_file

    log = tmp / f"chain-{uuid.uuid4().hex[:6]}.log"
    path = tmp / "chain.yaml"
    steps = "".join(CHAINED_STEP.format(i=i, log=log) for i in range(handoffs + 1))
    path.write_text(f"apiVersion: qlrf/v1\nkind: Runbook\nname: bench-chain\nsteps:\n{steps}")
    compiled = compile_file(path, [])
    handle, _ = await start(
        client,
        compiled.plan,
        compiled.inputs,
        "bench",
        workflow_id=f"bench-chain-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        record=False,
    )
    await handle.result()
    return gaps(log)


async def main(handoffs: int, rounds: int) -> None:
    from temporalio.client import Client

    from runner.local.temporal import launch, terminate
    from runner.worker import build_worker

    proc, port, _ = launch(None)
    try:
        client = await Client.connect(f"127.0.0.1:{port}")
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        locked: list[float] = []
        chained: list[float] = []
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            async with build_worker(client, task_queue=queue):
                await chained_round(client, queue, tmp, 2)  # warm up
                for _ in range(rounds):
                    locked += await locked_round(client, queue, tmp, handoffs)
                    chained += await chained_round(client, queue, tmp, handoffs)
    finally:
        terminate(proc)
    lm, cm = statistics.median(locked), statistics.median(chained)
    print(f"lock hand-off, run to run: median {lm * 1000:.0f} ms over {len(locked)} hand-offs")
    p90 = sorted(locked)[int(len(locked) * 0.9)]
    print(f"  (p90 {p90 * 1000:.0f} ms, max {max(locked) * 1000:.0f} ms)")
    print(f"step to step in one run, no lock: median {cm * 1000:.0f} ms over {len(chained)}")
    print(f"hand-off / step-to-step: {lm / cm:.2f}x; goal: hand-off <= 1 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--handoffs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.handoffs, args.rounds))
