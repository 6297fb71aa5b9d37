"""OpenTelemetry traces, on when QLRF_OTLP_ENDPOINT names an OTLP/HTTP collector.

The SDK's TracingInterceptor carries the trace through Temporal's headers: `apply`
opens it when it starts the run, the interpreter's spans hang from it, and every
attempt of every step is one `RunActivity` span, to which StepAttributes adds the
run, the step and the item. Without the variable nothing is imported or exported.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from runner.environment import redact
from runner.errors import QlrfError

OTLP_VARIABLE = "QLRF_OTLP_ENDPOINT"
SERVICE_NAME = "qlrf-run"
ATTRIBUTE_LIMIT = 256  # characters of one attribute value
log = logging.getLogger("qlrf.tracing")

_lock = threading.Lock()
_interceptors: list[Any] | None = None


def endpoint() -> str | None:
    value = os.environ.get(OTLP_VARIABLE, "").strip()
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise QlrfError(
            f"{OTLP_VARIABLE}={redact(value)!r}: not an OTLP/HTTP URL; set it like "
            "http://collector:4318 (or unset it to turn tracing off)"
        )
    return value.rstrip("/")


def client_interceptors() -> list[Any]:
    """The interceptors every client of this process carries: none without an endpoint."""
    global _interceptors
    url = endpoint()
    if url is None:
        return []
    with _lock:
        if _interceptors is None:
            _install(url)
            _interceptors = [_run_tracing()]
        return list(_interceptors)


def _run_tracing() -> Any:
    """The SDK's interceptor, minus the client's queries: `apply` and `watch` ask a run
    for its state every few hundred milliseconds, and each would be a trace of its own.
    Workflow spans are made even for runs started without a trace (a schedule, the
    Temporal CLI), so each run still has one."""
    from temporalio.client import OutboundInterceptor, QueryWorkflowInput
    from temporalio.contrib.opentelemetry import TracingInterceptor

    class Untraced(OutboundInterceptor):
        def __init__(self, traced: OutboundInterceptor, plain: OutboundInterceptor) -> None:
            super().__init__(traced)
            self._plain = plain

        async def query_workflow(self, input: QueryWorkflowInput) -> Any:
            return await self._plain.query_workflow(input)

    class RunTracing(TracingInterceptor):
        def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
            return Untraced(super().intercept_client(next), next)

    return RunTracing(always_create_workflow_spans=True)


def worker_interceptors() -> list[Interceptor]:
    return [StepAttributes()] if endpoint() is not None else []


def _install(url: str) -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME}),
        # an item is whatever the inventory holds: keep a hostile one from bloating spans
        span_limits=SpanLimits(max_attribute_length=ATTRIBUTE_LIMIT),
    )
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(_Quiet(exporter, url)))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)


def flush() -> None:
    """Export what is buffered (a CLI process exits right after its run)."""
    if _interceptors is None:
        return
    from opentelemetry import trace

    force = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force is not None:
        force(5000)


class _Quiet:
    """The exporter, saying once that the collector cannot be reached (and once that it
    is back) instead of logging every failed batch. Batches go on being tried."""

    def __init__(self, inner: Any, url: str) -> None:
        self._inner = inner
        self._url = redact(url)  # a collector's credentials stay out of the log
        self._failing = False
        # the exporter's own logger reports every failed attempt, with a traceback
        logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").setLevel(
            logging.CRITICAL
        )

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self._inner.export(spans)
        except Exception:  # a collector that is down must not stop the worker
            result = SpanExportResult.FAILURE
        if result != SpanExportResult.SUCCESS and not self._failing:
            self._failing = True
            log.warning(
                "traces cannot reach %s=%s; spans are dropped until it answers, and "
                "export goes on being tried",
                OTLP_VARIABLE,
                self._url,
            )
        elif result == SpanExportResult.SUCCESS and self._failing:
            self._failing = False
            log.warning("traces reach %s again", self._url)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


class StepAttributes(Interceptor):
    """Names the run, the step and the item on each attempt's span."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Attributes(next)


class _Attributes(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        from opentelemetry import trace

        span = trace.get_current_span()
        info = activity.info()
        request = input.args[0] if input.args else None
        # a batch's steps run in a child workflow: name the run, not the batch
        run_id = getattr(request, "run_id", None) or info.workflow_id or ""
        span.set_attribute("qlrf.run_id", str(run_id))
        span.set_attribute("qlrf.attempt", info.attempt)
        step = getattr(request, "step", None)
        if step:
            span.set_attribute("qlrf.step", str(step))
            item = getattr(request, "item", None)
            if item is not None:
                span.set_attribute("qlrf.item", str(item))
        return await self.next.execute_activity(input)
