"""A run's state for people: from the run itself when a worker answers, else from what
the run last published (its memo), so `status` and `pending` never wait on a worker."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from runner.client.workers import no_worker, workers_polling
from runner.contract import (
    FINAL_MEMO,
    KIND_ATTRIBUTE,
    LIVE_MEMO,
    NAME_ATTRIBUTE,
    PROGRESS_QUERY,
    STATE_QUERY,
)
from runner.contract.messages import JsonObject
from runner.contract.state import RunView
from runner.times import iso

NAME_KEY = SearchAttributeKey.for_keyword(NAME_ATTRIBUTE)
KIND_KEY = SearchAttributeKey.for_keyword(KIND_ATTRIBUTE)
SCHEDULED_BY_KEY = SearchAttributeKey.for_keyword("TemporalScheduledById")  # the server's
# A worker answers a query in milliseconds; one that does not answer within half a
# second is busy or gone, and what the run last published is shown instead (marked).
QUERY_SECONDS = 0.5


@dataclass
class Attempt:
    """A running step's activity as Temporal sees it: the retry it waits for, the output
    it last reported."""

    attempt: int
    waiting_to_retry: bool
    last_failure: str | None
    next_attempt_at: datetime | None
    failed_at: datetime | None  # when the last attempt ended
    heartbeat: JsonObject | None  # the step's own progress report


@dataclass
class Snapshot:
    view: RunView
    closed: bool
    attempts: dict[str, Attempt] = field(default_factory=dict)  # by step id
    published: bool = False  # read from the memo: no worker answered


async def snapshot(
    handle: WorkflowHandle[Any, Any],
    client: Client | None = None,
    *,
    attempts: bool = False,
    query_seconds: float = QUERY_SECONDS,
) -> Snapshot:
    """The run's state: its final state once closed; the run's own answer when a worker
    is there; otherwise what the run last published, marked with `published_at`.
    With `attempts`, also what Temporal knows of its running steps' activities."""
    description = await handle.describe()
    closed = description.status != WorkflowExecutionStatus.RUNNING
    found = attempts_of(description) if attempts and not closed else {}
    if found and client is not None:
        await decode_heartbeats(client, description, found)
    memo = await description.memo()
    if closed and isinstance(memo.get(FINAL_MEMO), dict):
        return Snapshot(RunView.from_json(memo[FINAL_MEMO]), True)
    queue = description.task_queue
    why = no_worker(queue)
    if client is None or await workers_polling(client, queue):
        why = (
            f"no worker answered within {query_seconds}s (task queue {queue}); start one "
            "with `qlrf-run worker` (the run waits meanwhile, and loses nothing)"
        )
        try:
            answer = await handle.query(STATE_QUERY, rpc_timeout=timedelta(seconds=query_seconds))
            view = RunView.from_json(answer)
            if client is not None and not closed:
                await with_running_batches(client, view)
            return Snapshot(view, closed, found)
        except RPCError:
            pass  # no worker answered after all
    picture = memo.get(LIVE_MEMO)
    if not isinstance(picture, dict):
        picture, why = {}, f"no worker has picked the run up yet: {why}"
    return Snapshot(from_picture(description, picture, why), closed, found, True)


async def view_of(handle: WorkflowHandle[Any, Any], client: Client | None = None) -> RunView:
    """The run's state (see snapshot)."""
    return (await snapshot(handle, client)).view


def attempts_of(description: Any, *, items: bool = False) -> dict[str, Attempt]:
    """The pending activities of the run's steps, by step id; with `items` (a fan-out
    batch), those of its items, by activity id."""
    found: dict[str, Attempt] = {}
    for pending in description.raw_description.pending_activities:
        kind, _, step = pending.activity_id.partition(":")
        if kind != "step" or not step or (":" in step) != items:
            continue  # plumbing, compensations, and fan-out items (in their batches)
        key = pending.activity_id if items else step
        failure = None
        if pending.HasField("last_failure"):
            last = pending.last_failure
            kind = (
                last.application_failure_info.type
                if last.HasField("application_failure_info")
                else ""
            )
            failure = f"{kind}: {last.message}" if kind else last.message
        next_at = (
            pending.next_attempt_schedule_time.ToDatetime().replace(tzinfo=UTC)
            if pending.HasField("next_attempt_schedule_time")
            else None
        )
        found[key] = Attempt(
            attempt=pending.attempt,
            waiting_to_retry=pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            and pending.attempt > 1,
            last_failure=failure or None,
            next_attempt_at=next_at,
            failed_at=(
                pending.last_attempt_complete_time.ToDatetime().replace(tzinfo=UTC)
                if pending.HasField("last_attempt_complete_time")
                else None
            ),
            heartbeat=None,
        )
    return found


async def decode_heartbeats(client: Client, description: Any, found: dict[str, Attempt]) -> None:
    """Fill in each attempt's latest heartbeat (its progress, its output's tail)."""
    for pending in description.raw_description.pending_activities:
        step = pending.activity_id.partition(":")[2]
        if step not in found:
            step = pending.activity_id
        if step in found and pending.heartbeat_details.payloads:
            with contextlib.suppress(Exception):  # a heartbeat is a hint, never a failure
                values = await client.data_converter.decode(pending.heartbeat_details.payloads)
                if values and isinstance(values[0], dict):
                    found[step].heartbeat = values[0]


def from_picture(description: Any, picture: JsonObject, why: str) -> RunView:
    """The run from what it last published (memo `live`) and what visibility knows."""
    attrs = description.typed_search_attributes
    closed = None
    if description.status != WorkflowExecutionStatus.RUNNING:
        closed = closed_status(description.status)
    return RunView.from_picture(
        picture,
        run_id=description.id,
        temporal_run_id=description.run_id,
        name=attrs.get(NAME_KEY),
        kind=attrs.get(KIND_KEY),
        why=why,
        closed_status=closed,
        started_at=iso(description.start_time),
        finished_at=iso(description.close_time),
    )


def closed_status(status: WorkflowExecutionStatus | None) -> str:
    """A Temporal execution status as a run status."""
    names = {
        WorkflowExecutionStatus.RUNNING: "running",
        WorkflowExecutionStatus.COMPLETED: "succeeded",
        WorkflowExecutionStatus.FAILED: "failed",
        WorkflowExecutionStatus.CANCELED: "cancelled",
        WorkflowExecutionStatus.TERMINATED: "terminated",
        WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    }
    return names.get(status, "running") if status is not None else "running"


async def with_running_batches(client: Client, view: RunView) -> None:
    """Add the progress of each running fan-out batch to its wave's counts.

    The run learns a batch's counts when the batch ends; until then the batch (a
    child workflow) answers its own `progress` query. A batch that ended between
    the two queries is already counted by the run, so it is left alone.
    """
    for step in view.steps.values():
        for wave in step.fanout.waves if step.fanout is not None else []:
            if not wave.get("batch"):
                continue
            with contextlib.suppress(RPCError):
                live = await client.get_workflow_handle(str(wave["batch"])).query(
                    PROGRESS_QUERY, rpc_timeout=timedelta(seconds=QUERY_SECONDS)
                )
                wave["succeeded"] += live["succeeded"]
                wave["failed"] += live["failed"]
                wave["skipped"] += live["skipped"]
                wave["running"] = live["running"]
