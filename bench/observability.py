"""Benchmark: what metrics and tracing cost the interpreter, and a worker's memory.

Part of `interpreter_vs_handwritten.py --observe`: one dev server, three workers in
one process, each on a task queue of its own and alternated round by round:
- plain: a runtime without metrics, no tracing;
- metrics: a runtime serving Prometheus metrics (the SDK's and qlrf_*) on a port;
- traced: the tracing interceptors, exporting to a local OTLP/HTTP receiver.
Goals: metrics/plain >= 0.95; traced/plain is reported.

`worker_memory` starts `qlrf-run worker --metrics-port` as operators do and reads
its resident memory idle, then with 1,000 runs waiting at a gate (all counted by
qlrf_gates_waiting).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

EXE = str(Path(sys.executable).with_name("qlrf-run"))


def sink() -> str:
    """A local OTLP/HTTP receiver that accepts and drops every export."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


async def clients(address: str, metrics_port: int) -> dict[str, Any]:
    """Three clients on three runtimes: plain, metrics, traced."""
    from temporalio.client import Client
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    from runner.engine.metrics import STEP_BUCKETS, STEP_SECONDS
    from runner.observe import tracing

    plain = Runtime(telemetry=TelemetryConfig(metrics=None))
    metered = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{metrics_port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={STEP_SECONDS: list(STEP_BUCKETS)},
            )
        )
    )
    os.environ[tracing.OTLP_VARIABLE] = sink()
    traced_interceptors = tracing.client_interceptors()
    return {
        "plain": await Client.connect(address, runtime=plain),
        "metrics": await Client.connect(address, runtime=metered),
        "traced": await Client.connect(address, runtime=plain, interceptors=traced_interceptors),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def worker_memory(address: str, runs: int, metrics_port: int) -> tuple[float, float, int]:
    """RSS of `qlrf-run worker --metrics-port` idle and with `runs` runs waiting at a gate."""
    from temporalio.client import Client

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.pipeline import compile_file

    queue = f"rss-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "QLRF_TEMPORAL_ADDRESS": address, "QLRF_TASK_QUEUE": queue}
    env.pop("QLRF_DATABASE_URL", None)
    env["QLRF_STORE"] = "off"
    worker = subprocess.Popen(
        [EXE, "worker", "--metrics-port", str(metrics_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the worker never served metrics"
                await asyncio.sleep(0.2)
        await asyncio.sleep(5)
        idle = rss_mb(worker.pid)
        with_runs = Path(os.environ.get("TMPDIR", "/tmp")) / f"gated-{uuid.uuid4().hex}.yaml"
        with_runs.write_text(
            "apiVersion: qlrf/v1\nkind: Task\nname: bench-gated\nsteps:\n"
            "  - id: review\n    type: approval\n    with: {message: wait}\n"
        )
        plan = compile_file(with_runs).plan.to_dict()
        with_runs.unlink()
        client = await Client.connect(address)
        sem = asyncio.Semaphore(50)

        async def start(i: int) -> None:
            async with sem:
                await client.start_workflow(
                    WORKFLOW_TYPE,
                    RunInput(plan, {}, "bench", record=False),
                    id=f"rss-{i}-{uuid.uuid4().hex[:6]}",
                    task_queue=queue,
                )

        await asyncio.gather(*(start(i) for i in range(runs)))
        counted = 0
        deadline = time.monotonic() + 300
        while counted < runs and time.monotonic() < deadline:
            await asyncio.sleep(2)
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            for line in text.splitlines():
                if line.startswith("qlrf_gates_waiting"):
                    counted = int(float(line.split()[-1]))
        return idle, rss_mb(worker.pid), counted
    finally:
        worker.terminate()
        worker.wait(timeout=60)
