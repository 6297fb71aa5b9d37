"""`qlrf-run test` at scale: 100 cases, each with a 24-hour gate and retries with
10-minute back-off, on the time-skipping server; the per-case overhead; and the
same runbook's cases on a dev server in real time, with the gate decided at once
and no back-off to wait for (real time cannot wait 24 hours), alternated.

    .venv/bin/python bench/runbook_tests.py [--cases 100] [--rounds 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from runner.cli import sdk_logging
from runner.local.temporal import temporal_binary
from runner.observe.runtime import configure_runtime
from runner.testing.files import load_suite
from runner.testing.session import Options, run_cases

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Runbook
name: bench-gate
defaults: {timeout: 5m}
steps:
  - id: prepare
    type: shell
    with: {command: [echo, prepare]}
    retry: {max_attempts: 3, initial_interval: 10m, max_interval: 10m}
  - id: review
    type: approval
    needs: [prepare]
    with: {message: go?, approvers: [bob], timeout: 24h}
  - id: apply
    type: shell
    needs: [review]
    with: {command: [echo, apply]}
"""
SIMULATED = """\
  - name: case {n}
    mocks:
      prepare: {{fail: {{type: CommandFailed}}, times: 2, then: {{output: {{}}}}}}
      apply: {{output: {{}}}}
    expect:
      status: failed
      steps: {{prepare: {{status: succeeded, attempts: 3}}, review: failed}}
"""
AT_ONCE = """\
  - name: case {n}
    mocks: {{prepare: {{output: {{}}}}, apply: {{output: {{}}}}}}
    decisions: [{{gate: review, by: bob, decision: approve}}]
    expect: {{status: succeeded}}
"""
HEAD = "apiVersion: qlrf/v1\nkind: Test\nrunbook: bench.yaml\ncases:\n"


async def dev_server(_binary: str) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary())


def suite(folder: Path, name: str, case: str, count: int):
    path = folder / f"{name}.test.yaml"
    path.write_text(HEAD + "".join(case.format(n=n) for n in range(count)))
    loaded, problems = load_suite(path)
    assert loaded is not None, problems
    return [(loaded, c) for c in loaded.cases]


def timed(work, options) -> float:
    began = time.perf_counter()
    results = asyncio.run(run_cases(work, options))
    seconds = time.perf_counter() - began
    failed = [r for r in results if not r.passed]
    assert not failed, (failed[0].broken, failed[0].mismatches)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    sdk_logging.configure()  # mocked failures are not worth a log line each
    configure_runtime()
    folder = Path(tempfile.mkdtemp(prefix="qlrf-bench-tests-"))
    (folder / "bench.yaml").write_text(RUNBOOK)
    simulated = suite(folder, "simulated", SIMULATED, args.cases)
    at_once = suite(folder, "at-once", AT_ONCE, args.cases)
    one = simulated[:1]
    fast = Options(jobs=args.jobs)
    serial = Options(jobs=1)
    dev = Options(jobs=args.jobs, server=dev_server)
    for round_ in range(1, args.rounds + 1):
        suite_s = timed(simulated, fast)
        dev_s = timed(at_once, dev)
        # Overhead of a case: one lane, the server and worker started once, the
        # 100 cases one after another, less the cost of one case alone.
        serial_s = timed(simulated, serial)
        single_s = timed(one, serial)
        per_case = (serial_s - single_s) / max(1, len(simulated) - 1)
        print(
            f"round {round_}: {len(simulated)} cases with a 24h gate and 10m back-off in "
            f"{suite_s:.2f}s ({args.jobs} lanes); one lane: {per_case * 1000:.0f} ms a case; "
            f"dev server in real time, gates decided at once: {dev_s:.2f}s; "
            f"simulated / real-time: {suite_s / dev_s:.2f}"
        )


if __name__ == "__main__":
    main()
