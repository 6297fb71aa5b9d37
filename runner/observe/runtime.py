"""The SDK runtime of this process: its log lines through Python logging and, for a
worker with `--metrics-port`, its Prometheus endpoint, which also serves qlrf's own
metrics (runner/engine/metrics.py and the gates gauge).

A process has one runtime, made before its first client, so this is the only place
that makes it.
"""

from __future__ import annotations

import contextlib
import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from runner.engine.metrics import STEP_BUCKETS, STEP_SECONDS
from runner.errors import QlrfError

_made = False


def configure_runtime(metrics_port: int | None = None, host: str = "127.0.0.1") -> None:
    """Make the process's runtime once; later calls keep the first one. Metrics listen on
    `host`: loopback unless the operator says otherwise (`--metrics-host`)."""
    global _made
    if _made:
        return
    metrics = None
    if metrics_port is not None:
        metrics = PrometheusConfig(
            bind_address=f"{host}:{metrics_port}",
            counters_total_suffix=True,  # qlrf_steps -> qlrf_steps_total
            durations_as_seconds=True,
            histogram_bucket_overrides={STEP_SECONDS: list(STEP_BUCKETS)},
        )
    try:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                    forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
                ),
                metrics=metrics,
            )
        )
    except ValueError as exc:  # the exporter could not bind
        raise QlrfError(
            f"--metrics-port {metrics_port} on {host}: cannot serve metrics ({exc}); choose a free "
            "port, or a --metrics-host this machine has"
        ) from None
    _made = True
    with contextlib.suppress(RuntimeError):  # a runtime is already in use: keep it
        Runtime.set_default(runtime, error_if_already_set=True)
