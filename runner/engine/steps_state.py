"""The interpreter's plain parts: a step's state, failures, and Temporal policy mapping.

Pure functions and data, imported by the workflow through Temporal's passthrough,
so that they are not re-imported for every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

TERMINAL = ("succeeded", "failed", "skipped", "cancelled")
# Temporal refuses payloads over 2 MiB (and a refused workflow task hangs the run).
MEMO_LIMIT = 1_000_000
PAYLOAD_LIMIT = 1_500_000
STORE_BATCH_BYTES = 1_000_000  # one write to the run store stays far below 2 MiB
STORE_FLUSH_EVENTS = 200  # write when this many events wait...
STORE_FLUSH_INTERVAL = timedelta(seconds=60)  # ...or at the latest this long after one
# A write to the store retries with backoff for as long as PostgreSQL is down.
STORE_WRITE_TIMEOUT = timedelta(seconds=30)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
# Kept on the step and in the run's error, so an operator can read what happened.
ERROR_TEXT_LIMIT = 4000


def payload_size(value: Any) -> int:

    return len(json.dumps(value, default=str))


def next_store_batch(outbox: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first events of an outbox that fit in one write (at least one)."""
    events: list[dict[str, Any]] = []
    size = 0
    for event in outbox:
        size += payload_size(event)
        if events and size > STORE_BATCH_BYTES:
            break
        events.append(event)
    return events


class Refused(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class StepFailed(Exception):
    def __init__(
        self,
        error_type: str,
        message: str,
        attempts: int | None = None,
        earlier: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.attempts = attempts
        self.earlier = earlier or []  # failures of the attempts before the last one


@dataclass
class StepState:
    status: str = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    error: dict[str, str] | None = None
    reason: str | None = None  # why a step was skipped or cancelled
    compensation: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "output": self.output,
            "error": self.error,
            "reason": self.reason,
            "compensation": self.compensation,
        }


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(value: int | None) -> timedelta | None:
    return timedelta(milliseconds=value) if value else None


def retry_policy(policy: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=policy["initial_interval_ms"]),
        backoff_coefficient=policy["backoff_coefficient"],
        maximum_interval=timedelta(milliseconds=policy["max_interval_ms"]),
        maximum_attempts=policy["max_attempts"],
        # An oversized result can never shrink by retrying.
        non_retryable_error_types=[*policy["non_retryable_errors"], "PayloadsTooLarge"],
    )


def activity_timeouts(node: dict[str, Any]) -> dict[str, Any]:
    """The node's timeouts; StepFailed when Temporal would refuse the activity."""
    timeouts = node.get("timeouts") or {}
    if not (timeouts.get("start_to_close_ms") or timeouts.get("schedule_to_close_ms")):
        # Temporal refuses such an activity in a way that hangs the run; say why instead.
        raise StepFailed(
            "InvalidPlan",
            f"step '{node['id']}' has neither a start_to_close nor a schedule_to_close "
            "timeout; give it a `timeout`",
            1,
        )
    return dict(timeouts)


def declaration(spec: dict[str, Any]) -> dict[str, Any]:
    decl: dict[str, Any] = {"type": spec["type"], "required": spec["required"]}
    if spec["has_default"]:
        decl["default"] = spec["default"]
    if spec.get("enum") is not None:
        decl["enum"] = list(spec["enum"])
    if spec.get("items_type"):
        decl["items"] = {"type": spec["items_type"]}
    return decl


def step_failure(exc: ActivityError, max_attempts: int) -> StepFailed:
    """Turn Temporal's activity failure into the step's error type, message and attempts."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else {}
        attempt = details.get("attempt") if isinstance(details, dict) else None
        failures = details.get("failures") if isinstance(details, dict) else None
        earlier = failures[:-1] if isinstance(failures, list) else []
        return StepFailed(cause.type or "ApplicationError", cause.message, attempt, earlier)
    if isinstance(cause, TimeoutError):
        kind = cause.type.name.lower() if cause.type is not None else "activity"
        attempts = max_attempts if max_attempts > 0 else None
        return StepFailed("StepTimedOut", f"the step timed out ({kind})", attempts)
    if isinstance(cause, CancelledError):
        return StepFailed("StepCancelled", "the step was cancelled")
    return StepFailed(type(cause).__name__ if cause else "ActivityError", str(cause or exc))
