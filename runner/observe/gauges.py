"""`qlrf_gates_waiting`: the gates waiting for a decision, across every run.

Counted from visibility (each run lists its waiting gates in the QlrfWaiting search
attribute, at once when a gate opens or closes), so the figure is the same whichever
worker serves it and survives worker restarts; alert on max() over the workers.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime

from runner.contract import WAITING_ATTRIBUTE, WORKFLOW_TYPE
from runner.observe.ticks import ticks

GATES_WAITING = "qlrf_gates_waiting"
REFRESH_SECONDS = 5.0
WAITING_KEY = SearchAttributeKey.for_keyword_list(WAITING_ATTRIBUTE)
log = logging.getLogger("qlrf.metrics")


async def gates_waiting(client: Client) -> int:
    query = (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' "
        f"AND {WAITING_ATTRIBUTE} IS NOT NULL"
    )
    count = 0
    async for wf in client.list_workflows(query):
        waiting = wf.typed_search_attributes.get(WAITING_KEY) or []
        # A run in line for a lock lists it as `lock:KEY`: not a gate.
        count += sum(1 for entry in waiting if not entry.startswith("lock:"))
    return count


async def keep_gates_gauge(client: Client, stop: asyncio.Event) -> None:
    """Refresh the gauge every few seconds until `stop`; a failed count keeps the last."""
    gauge = Runtime.default().metric_meter.create_gauge(
        GATES_WAITING, "Gates waiting for a decision, across all runs"
    )
    async for _ in ticks(stop, REFRESH_SECONDS):
        try:
            gauge.set(await gates_waiting(client))
        except Exception as exc:  # visibility down: keep the last figure
            log.debug("cannot count waiting gates: %s", exc)
