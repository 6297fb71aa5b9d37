"""One place that calls an activity from workflow code: policy, timeouts, failure mapping.

Used for a step's activity, a compensation, and every item of a fan-out batch.
What an activity failure becomes (StepFailed with the step's error type, attempts
and the failures of earlier attempts) is decided here and nowhere else.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetry
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

from runner.engine.failures import StepFailed
from runner.plan.model import RetryPolicy, Timeouts


def ms(value: int | None) -> timedelta | None:
    return timedelta(milliseconds=value) if value else None


def retry_policy(policy: RetryPolicy) -> TemporalRetry:
    return TemporalRetry(
        initial_interval=timedelta(milliseconds=policy.initial_interval_ms),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(milliseconds=policy.max_interval_ms),
        maximum_attempts=policy.max_attempts,
        # An oversized result can never shrink by retrying.
        non_retryable_error_types=[*policy.non_retryable_errors, "PayloadsTooLarge"],
    )


def checked_timeouts(step_id: str, timeouts: Timeouts | None) -> Timeouts:
    """The timeouts; StepFailed when Temporal would refuse the activity (and hang the run)."""
    if timeouts is None or not (timeouts.start_to_close_ms or timeouts.schedule_to_close_ms):
        raise StepFailed(
            "InvalidPlan",
            f"step '{step_id}' has neither a start_to_close nor a schedule_to_close "
            "timeout; give it a `timeout`",
            1,
        )
    return timeouts


def step_failure(exc: ActivityError, max_attempts: int) -> StepFailed:
    """Temporal's activity failure as the step's error type, message and attempts."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else {}
        attempt = details.get("attempt") if isinstance(details, dict) else None
        failures = details.get("failures") if isinstance(details, dict) else None
        earlier = failures[:-1] if isinstance(failures, list) else []
        last = failures[-1] if isinstance(failures, list) and failures else {}
        started = last.get("started_at") if isinstance(last, dict) else None
        printed = {
            k: details[k]
            for k in ("exit_code", "stdout", "stderr")
            if isinstance(details, dict) and k in details
        }
        failed = StepFailed(
            cause.type or "ApplicationError",
            cause.message,
            attempt,
            earlier,
            started,
            printed or None,
        )
        worker = last.get("worker") if isinstance(last, dict) else None
        failed.worker = worker if isinstance(worker, str) else None
        return failed
    if isinstance(cause, TimeoutError):
        kind = cause.type.name.lower() if cause.type is not None else "activity"
        # The last heartbeat names the attempt that timed out and the earlier failures.
        beat = cause.last_heartbeat_details[0] if cause.last_heartbeat_details else None
        beat = beat if isinstance(beat, dict) else {}
        attempt = beat.get("attempt") if isinstance(beat.get("attempt"), int) else None
        if attempt is None:
            attempt = max_attempts if max_attempts > 0 else None
        kept = beat.get("failures")
        earlier = [f for f in kept if isinstance(f, dict)] if isinstance(kept, list) else []
        return StepFailed("StepTimedOut", f"the step timed out ({kind})", attempt, earlier)
    if isinstance(cause, CancelledError):
        return StepFailed("StepCancelled", "the step was cancelled")
    return StepFailed(type(cause).__name__ if cause else "ActivityError", str(cause or exc))


async def call_activity(
    activity: str,
    request: Any,
    *,
    activity_id: str,
    summary: str,
    retry: RetryPolicy,
    timeouts: Timeouts,
) -> dict[str, Any]:
    """Run a step's activity; its result, or StepFailed, or CancelledError when stopped."""
    try:
        result: dict[str, Any] = await workflow.execute_activity(
            activity,
            request,
            activity_id=activity_id,
            summary=summary,
            start_to_close_timeout=ms(timeouts.start_to_close_ms),
            schedule_to_close_timeout=ms(timeouts.schedule_to_close_ms),
            schedule_to_start_timeout=ms(timeouts.schedule_to_start_ms),
            heartbeat_timeout=ms(timeouts.heartbeat_ms),
            retry_policy=retry_policy(retry),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
    except ActivityError as exc:
        if isinstance(exc.cause, CancelledError):
            raise asyncio.CancelledError() from None  # the step was stopped, not failed
        raise step_failure(exc, retry.max_attempts) from None
    return result
