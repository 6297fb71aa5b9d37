"""Starting, following and inspecting runs through the Temporal client."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from runner.engine.model import TASK_QUEUE, WORKFLOW_TYPE, RunInput
from runner.errors import QlrfError
from runner.plan.model import Plan, inputs_hash

NAME_KEY = SearchAttributeKey.for_keyword("QlrfName")
KIND_KEY = SearchAttributeKey.for_keyword("QlrfKind")
POLL_SECONDS = 0.5


def workflow_id_for(plan: Plan, inputs: dict[str, Any]) -> str:
    """The same plan with the same inputs gives the same id, so re-applying attaches."""
    digest = hashlib.sha256(f"{plan.plan_hash}:{inputs_hash(inputs)}".encode()).hexdigest()
    return f"{plan.name}-{digest[:12]}"


async def start(
    client: Client,
    plan: Plan,
    inputs: dict[str, Any],
    started_by: str,
    *,
    workflow_id: str | None = None,
    definition_sha256: str = "",
    task_queue: str = TASK_QUEUE,
) -> tuple[WorkflowHandle[Any, Any], bool]:
    """Start the run, or attach to the open run with the same id. Returns (handle, attached)."""
    wid = workflow_id or workflow_id_for(plan, inputs)
    attached = False
    try:
        description = await client.get_workflow_handle(wid).describe()
        attached = description.status == WorkflowExecutionStatus.RUNNING
    except RPCError:
        pass
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        RunInput(plan.to_dict(), inputs, started_by, definition_sha256),
        id=wid,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(NAME_KEY, plan.name), SearchAttributePair(KIND_KEY, plan.kind)]
        ),
        static_summary=f"{plan.kind} {plan.name}",
        static_details=plan.description or None,
    )
    return handle, attached


async def existing(client: Client, run: str) -> WorkflowHandle[Any, Any]:
    """The handle of a run that exists; QlrfError with advice when it does not."""
    handle = client.get_workflow_handle(run)
    try:
        await handle.describe()
    except RPCError:
        raise QlrfError(f"no run '{run}'; `qlrf-run list` shows the runs") from None
    return handle


async def state_of(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The run's state: the memo once closed, else the live query."""
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        memo = await description.memo()
        if "state" in memo:
            return dict(memo["state"])
    try:
        return dict(await handle.query("state", rpc_timeout=timedelta(seconds=10)))
    except RPCError as exc:
        raise QlrfError(
            f"run {handle.id} did not answer ({exc.message}); is a worker running? "
            "start one with `qlrf-run worker`"
        ) from None


async def follow(
    handle: WorkflowHandle[Any, Any], on_state: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Poll the run's state until it closes; returns the final state."""
    done = asyncio.ensure_future(_wait_closed(handle))
    try:
        while not done.done():
            # Until a worker picks the run up, the query has no answer.
            with contextlib.suppress(RPCError):
                on_state(dict(await handle.query("state", rpc_timeout=timedelta(seconds=5))))
            await asyncio.wait([done], timeout=POLL_SECONDS)
    finally:
        if not done.done():
            done.cancel()
    state = await state_of(handle)
    on_state(state)
    return state


async def _wait_closed(handle: WorkflowHandle[Any, Any]) -> None:
    with contextlib.suppress(Exception):  # the outcome is read from the state
        await handle.result()


def status_query(kind: str | None, state: str | None) -> str:
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
    if kind:
        clauses.append(f"QlrfKind = '{kind}'")
    mapping = {
        "running": "Running",
        "succeeded": "Completed",
        "failed": "Failed",
        "cancelled": "Canceled",
        "timed_out": "Failed",
    }
    if state:
        clauses.append(f"ExecutionStatus = '{mapping[state]}'")
    return " AND ".join(clauses)
