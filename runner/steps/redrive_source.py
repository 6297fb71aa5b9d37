"""How the run a redrive continues ended: from the run store (every item's row), else
from Temporal's final state of it. Read by the CLI, to say what a redrive will do,
and by the worker as the redrive starts, which decides what it keeps
(runner/steps/admission.py): a run's `redrive` input is never trusted as sent.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from runner.contract import FINAL_MEMO, RunInput
from runner.errors import QlrfError
from runner.plan.model import Plan
from runner.plan.redrive import Original, outcomes_from_state, status_refusal

_CLOSED = {
    WorkflowExecutionStatus.COMPLETED: "succeeded",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


async def from_temporal(client: Client, run: str) -> Original | None:
    """The original as Temporal knows it; None when it has no such run. QlrfError when
    it cannot be redriven (still running, or it succeeded)."""
    handle = client.get_workflow_handle(run)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise QlrfError(f"cannot read run {run} from Temporal: {exc.message}") from None
    closed = _CLOSED.get(described.status) if described.status is not None else None
    state = await described.memo_value(FINAL_MEMO, default=None) if closed else None
    status = (state or {}).get("status") or closed or "running"
    refused = status_refusal(run, status)
    if refused is not None:
        raise QlrfError(refused)
    request: RunInput | None = None
    async for event in handle.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        [request] = await client.data_converter.decode(started.input.payloads, [RunInput])
        break
    if request is None or not isinstance(request.plan, dict):
        return None
    plan = Plan.from_dict(request.plan)
    found = Original(
        run,
        status,
        plan,
        plan.plan_hash,
        dict((state or {}).get("inputs") or request.inputs),
        dict(request.groups) if isinstance(request.groups, dict) else None,
        str(request.definition_sha256 or ""),
        str(request.definition_file or ""),
    )
    outcomes_from_state(found, state or {})
    return found


async def from_store(
    dsn: str, run: str, original: Original | None
) -> tuple[Original | None, dict[str, Any] | None]:
    """The original's outcomes from the run store (exact, item by item), and its row;
    with no original from Temporal, also its plan's hash, definition and inputs."""
    from runner.store.queries import ended

    found = await ended(dsn, run)
    if found is None:
        return original, None
    row, (steps, items) = found
    if original is None:
        refused = status_refusal(run, row["status"])
        if refused is not None:
            raise QlrfError(refused)
        original = Original(
            row["workflow_id"],
            row["status"],
            None,
            row["plan_hash"] or "",
            dict(row["inputs"] or {}),
            None,
            row["definition_sha256"] or "",
            row["definition_file"] or "",
        )
    original.steps = steps
    original.items = items
    original.unnamed_items = []  # the store names every item
    original.source = "store"
    return original, row
