"""A run's events from Temporal history, in the shape of `history --format json`."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from runner.contract.events import HistoryEvent
from runner.times import iso


def _step(activity_id: str) -> str | None:
    kind, _, rest = activity_id.partition(":")
    return rest if kind in ("step", "compensate") else None


async def events_of(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    scheduled: dict[int, str] = {}  # scheduled event id -> activity id
    async for event in handle.fetch_history_events():
        at = iso(event.event_time.ToDatetime()) or ""
        kind = event.event_type

        def add(
            name: str,
            step: str | None = None,
            attempt: int | None = None,
            detail: str | None = None,
            at: str = at,
        ) -> None:
            events.append(
                {
                    "at": at,
                    "event": name,
                    "step": step,
                    "item": None,
                    "attempt": attempt,
                    "actor": None,
                    "detail": detail,
                }
            )

        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            add("run_started")
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            aid = scheduled.get(started.scheduled_event_id, "")
            name = "compensation_started" if aid.startswith("compensate:") else "step_started"
            add(name, _step(aid), started.attempt)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            aid = scheduled.get(
                event.activity_task_completed_event_attributes.scheduled_event_id, ""
            )
            add(
                "compensation_done" if aid.startswith("compensate:") else "step_succeeded",
                _step(aid),
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            aid = scheduled.get(failed.scheduled_event_id, "")
            failure = failed.failure
            detail = f"{failure.application_failure_info.type}: {failure.message}"
            add("step_failed", _step(aid), None, detail)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            aid = scheduled.get(
                event.activity_task_timed_out_event_attributes.scheduled_event_id, ""
            )
            add("step_timed_out", _step(aid))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            aid = scheduled.get(
                event.activity_task_canceled_event_attributes.scheduled_event_id, ""
            )
            add("step_cancelled", _step(aid))
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            add(
                "timer_started",
                None,
                None,
                event.user_metadata.summary.data.decode(errors="replace").strip('"')
                if event.HasField("user_metadata")
                else None,
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            add("cancel_requested")
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            add(
                "child_started",
                None,
                None,
                event.start_child_workflow_execution_initiated_event_attributes.workflow_id,
            )
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        ):
            add(
                "run_finished",
                None,
                None,
                EventType.Name(kind).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_").lower(),
            )
    return events
