"""Starting, following and inspecting runs through the Temporal client."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from runner.client import signing
from runner.client.state import KIND_KEY, NAME_KEY
from runner.contract import (
    LIVE_MEMO,
    PAYLOAD_LIMIT,
    TASK_QUEUE,
    WORKFLOW_TYPE,
    RunInput,
    payload_size,
)
from runner.contract.messages import Inputs, JsonObject
from runner.errors import QlrfError
from runner.plan.model import Plan, inputs_hash
from runner.plan.redrive import RedriveAsk
from runner.trust import claims


def workflow_id_for(plan: Plan, inputs: Inputs) -> str:
    """The same plan with the same inputs gives the same id, so re-applying attaches."""
    digest = hashlib.sha256(f"{plan.plan_hash}:{inputs_hash(inputs)}".encode()).hexdigest()
    return f"{plan.name}-{digest[:12]}"


async def start(
    client: Client,
    plan: Plan,
    inputs: Inputs,
    started_by: str,
    *,
    workflow_id: str | None = None,
    definition_sha256: str = "",
    definition_file: str = "",
    definition_text: str = "",
    record: bool | None = None,
    task_queue: str = TASK_QUEUE,
    redrive: RedriveAsk | None = None,
    groups: dict[str, list[str]] | None = None,
    provenance: dict[str, Any] | None = None,
    signer: Callable[[claims.Claim], claims.Proof] | None = None,
) -> tuple[WorkflowHandle[Any, Any], bool]:
    """Start the run, or attach to the open run with the same id. Returns (handle, attached)."""
    once = redrive is not None
    if once:
        wid, attached = workflow_id or workflow_id_for(plan, inputs), False
    else:
        wid, attached = await open_or_next(client, workflow_id or workflow_id_for(plan, inputs))
    request = run_request(
        plan,
        inputs,
        started_by,
        definition_sha256=definition_sha256,
        definition_file=definition_file,
        definition_text=definition_text,
        record=record,
        redrive=redrive,
        groups=groups,
    )
    request.provenance = provenance
    if (signer is not None or signing.wanted_here()) and not attached:
        # Signed mode: the run checks this before its first step (docs/trust.md). A
        # service signs for the person it signed in (`signer`, runner/web/vouch.py).
        claim = claims.start_claim(wid, plan.plan_hash, inputs, redrive, provenance)
        request.proof = signer(claim) if signer is not None else signing.sign(claim)
    # A redrive's id is the one its original may have (RUN.r1): never reused, never
    # shared, so two redrives of one run cannot both start.
    try:
        handle = await _start(client, request, wid, plan, started_by, task_queue, once)
    except WorkflowAlreadyStartedError:
        if not once:
            # The run with this id closed a moment ago (another apply's): take the next.
            return await start(
                client,
                plan,
                inputs,
                started_by,
                workflow_id=workflow_id,
                definition_sha256=definition_sha256,
                definition_file=definition_file,
                definition_text=definition_text,
                record=record,
                task_queue=task_queue,
                groups=groups,
                provenance=provenance,
                signer=signer,
            )
        raise QlrfError(
            f"run {redrive['of'] if redrive else wid} is being redriven already, as {wid}; "
            f"follow it with `qlrf-run watch {wid}`"
        ) from None
    return handle, attached


async def open_or_next(client: Client, base: str) -> tuple[str, bool]:
    """The id of a run of these inputs: (the open run's, True) to attach to it, else
    (a new id, False). Closed runs keep their ids: after `base` come `base-2`,
    `base-3`, ... The ids in use run from `base` without gaps, so the newest is
    found in a few describes however many came before."""
    found = 0  # the highest n known to exist
    missing: int | None = None  # the lowest n known not to
    probe = 1
    while missing is None:
        if await run_status(client, _nth(base, probe)) is None:
            missing = probe
        else:
            found, probe = probe, probe * 2
    while missing - found > 1:
        middle = (found + missing) // 2
        if await run_status(client, _nth(base, middle)) is None:
            missing = middle
        else:
            found = middle
    if found and await run_status(client, _nth(base, found)) == WorkflowExecutionStatus.RUNNING:
        return _nth(base, found), True
    return _nth(base, found + 1), False


def _nth(base: str, n: int) -> str:
    return base if n == 1 else f"{base}-{n}"


async def run_status(client: Client, wid: str) -> WorkflowExecutionStatus | None:
    """The run's status; None when no run has this id."""
    try:
        description = await client.get_workflow_handle(wid).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise QlrfError(f"cannot look at run {wid}: {exc.message}") from None
    return description.status or WorkflowExecutionStatus.RUNNING


async def _start(
    client: Client,
    request: RunInput,
    wid: str,
    plan: Plan,
    started_by: str,
    task_queue: str,
    once: bool,
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        WORKFLOW_TYPE,
        request,
        id=wid,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL
        if once
        else WorkflowIDConflictPolicy.USE_EXISTING,
        # An id names one run for good: a closed run's id is never given to another.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=run_attributes(plan),
        # Until a worker takes the run up, `status` shows this picture of it.
        memo={LIVE_MEMO: first_picture(plan, started_by)},
        static_summary=f"{plan.kind} {plan.name}",
        static_details=plan.description or None,
    )


def run_request(
    plan: Plan,
    inputs: Inputs,
    started_by: str,
    *,
    definition_sha256: str = "",
    definition_file: str = "",
    definition_text: str = "",
    record: bool | None = None,
    redrive: RedriveAsk | None = None,
    groups: dict[str, list[str]] | None = None,
) -> RunInput:
    """The input of a run (refused when it would not fit in one payload), as `apply`
    and schedules start it; approver groups are resolved now."""
    from runner.config import resolve_groups
    from runner.local.postgres import store_enabled

    plan_json = plan.to_dict()  # walks the whole plan: once
    refuse_oversized(plan_json, inputs)
    request = RunInput(
        plan_json,
        inputs,
        started_by,
        definition_sha256,
        resolve_groups(gate_groups(plan)) if groups is None else groups,
        record=store_enabled() if record is None else record,
        definition_file=definition_file,
        definition_text=definition_text,
        redrive=redrive,
    )
    return request


def run_attributes(plan: Plan) -> TypedSearchAttributes:
    """What `list` and the Temporal UI filter runs by: the runbook's name and kind."""
    return TypedSearchAttributes(
        [SearchAttributePair(NAME_KEY, plan.name), SearchAttributePair(KIND_KEY, plan.kind)]
    )


FIRST_PICTURE_LIMIT = 64 * 1024


def first_picture(plan: Plan, started_by: str) -> JsonObject:
    """The run as it is before any worker has seen it: every step pending."""
    steps = {node.id: {"status": "pending", "attempts": 0} for node in plan.nodes}
    steps.update({node.id: {"status": "pending", "attempts": 0} for node in plan.finally_nodes})
    picture: JsonObject = {
        "status": "running",
        "paused": False,
        "started_by": started_by,
        "steps": steps,
        "gates": [],
        "controls": [],
        "error": None,
    }
    if payload_size(picture) > FIRST_PICTURE_LIMIT:
        picture["steps"] = {}  # thousands of steps: the run publishes them itself
    return picture


def refuse_oversized(plan: JsonObject, inputs: Inputs) -> None:
    """QlrfError when the run's input would not fit in one Temporal payload.

    Found before the run starts: once started, such a run could never be scheduled.
    An inventory is the usual culprit, so the largest input is named.
    """

    size = payload_size(plan) + payload_size(inputs)
    if size <= PAYLOAD_LIMIT:
        return
    sizes = {name: payload_size(value) for name, value in inputs.items()}
    largest = max(sizes, key=lambda name: sizes[name]) if sizes else None
    culprit = (
        f"; input '{largest}' alone is {sizes[largest] / 1e6:.1f} MB"
        if largest is not None and sizes[largest] > PAYLOAD_LIMIT / 4
        else ""
    )
    raise QlrfError(
        f"the run's plan and inputs are {size / 1e6:.1f} MB, over the "
        f"{PAYLOAD_LIMIT / 1e6:.1f} MB that one Temporal payload may hold{culprit}; split the "
        "inventory into several runs (by region, by rack), or pass smaller items "
        "(host names, not whole records)"
    )


def gate_groups(plan: Plan) -> set[str]:
    """The groups that approval gates of the plan (and of its child plans) name."""
    names: set[str] = set()
    for node in (*plan.nodes, *plan.finally_nodes):
        approvers: list[Any] = []
        if node.capabilities.gate:
            approvers += list(node.with_.get("approvers") or [])
            escalate = node.with_.get("escalate")
            if isinstance(escalate, dict):
                approvers += list(escalate.get("to") or [])
        if node.fanout is not None:
            for wave in node.fanout.waves:
                approvers += wave.approvers
        for entry in approvers:
            if isinstance(entry, str) and entry.startswith("group:"):
                names.add(entry.removeprefix("group:"))
        if node.child is not None:
            names |= gate_groups(node.child)
    return names


async def existing(client: Client, run: str) -> WorkflowHandle[Any, Any]:
    """The handle of a run that exists; QlrfError with advice when it does not."""
    handle = client.get_workflow_handle(run)
    try:
        await handle.describe()
    except RPCError:
        raise QlrfError(f"no run '{run}'; `qlrf-run list` shows the runs") from None
    return handle


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
        "terminated": "Terminated",
    }
    if state:
        clauses.append(f"ExecutionStatus = '{mapping[state]}'")
    return " AND ".join(clauses)
