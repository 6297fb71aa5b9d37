"""Helpers every activity shares: failures with a stable type, capped output, attempts.

Temporal shows the workflow only a step's last attempt. So that the run store can
record every attempt with its own times, each attempt heartbeats who it is (its
number and start) and, when it fails, its failure; the next attempt reads that
back from the heartbeat details and hands the list on, to the workflow in its
final result or error. An attempt that left no failure behind (its worker was
killed, or it ran out of time) is recognised by the next one and recorded as
WorkerLost (or StepTimedOut).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.contract import StepRequest, StepResult
from runner.contract.messages import JsonObject
from runner.contract.state import AttemptFailure
from runner.steps import leases
from runner.steps.secrets import Resolver, SecretFailure
from runner.steps.trust import worker_identity
from runner.times import iso, parse

# Per stream; the tail is kept, since the end of a log says what went wrong.
OUTPUT_CAP = 64 * 1024
# A step's whole result must stay far below Temporal's 2 MiB payload limit.
RESULT_LIMIT = 1024 * 1024
MAX_KEPT_FAILURES = 20
# Keep failure messages short: the list travels in heartbeats and results.
FAILURE_MESSAGE_LIMIT = 1000
# An attempt whose last heartbeat came this close to its start_to_close limit ran
# out of time; otherwise, with no failure of its own, its worker was lost.
TIMEOUT_SLACK = timedelta(seconds=3)


def tail(data: bytes, secrets: Resolver, cap: int = OUTPUT_CAP) -> str:
    """The end of what a process printed, at most `cap` characters, secrets masked
    first: a cap that cut through a secret would leave most of it visible."""
    text = str(secrets.mask(data.decode("utf-8", errors="replace")))
    if len(text) > cap:
        return f"[... {len(text) - cap} characters cut ...]\n{text[-cap:]}"
    return text


def _now() -> datetime:
    return datetime.now(UTC)


def _lost(details: JsonObject, info: activity.Info) -> AttemptFailure:
    """The record of the attempt that heartbeated `details` and then fell silent."""
    number = int(details.get("attempt") or 0)
    started, beat = parse(details.get("started_at")), parse(details.get("beat_at"))
    limit = info.start_to_close_timeout
    if started and beat and limit and beat - started >= limit - TIMEOUT_SLACK:
        kind, message = "StepTimedOut", f"attempt {number} ran out of its {limit} start_to_close"
    else:
        kind = "WorkerLost"
        message = (
            f"attempt {number} ended without a result: its worker stopped answering "
            f"(last heartbeat {details.get('beat_at')})"
        )
    return {
        "attempt": number,
        "type": kind,
        "message": message,
        "started_at": details.get("started_at"),
        "failed_at": details.get("beat_at"),
    }


def earlier_failures() -> list[AttemptFailure]:
    """The failures of this step's earlier attempts, lost ones included."""
    info = activity.info()
    details = info.heartbeat_details[0] if info.heartbeat_details else None
    found: list[AttemptFailure] = []
    last = 0  # the latest attempt that left a trace
    if isinstance(details, dict):
        kept = details.get("failures")
        if isinstance(kept, list):
            found = [cast(AttemptFailure, f) for f in kept if isinstance(f, dict)]
        numbers = [int(f["attempt"]) for f in found if isinstance(f.get("attempt"), int)]
        last = max(numbers, default=0)
        beating = details.get("attempt")
        if isinstance(beating, int) and last < beating < info.attempt:
            found.append(_lost(details, info))
            last = beating
    for number in range(last + 1, info.attempt):
        # An attempt that ended before its first heartbeat left nothing to read.
        found.append(
            {
                "attempt": number,
                "type": "WorkerLost",
                "message": f"attempt {number} ended without a result or a heartbeat",
                "started_at": None,
                "failed_at": None,
            }
        )
    return found[-MAX_KEPT_FAILURES:]


def _identity() -> JsonObject:
    info = activity.info()
    found: JsonObject = {
        "attempt": info.attempt,
        "started_at": iso(info.started_time),
        "beat_at": iso(_now()),
    }
    found.update(leases.heartbeat_fields())  # revoked by the next attempt if this one is lost
    return found


async def resolved(secrets: Resolver, request: StepRequest) -> tuple[JsonObject, dict[str, str]]:
    """The step's parameters and script environment with its secrets in place; a secret
    that cannot be had fails the step with its own type (SecretUnavailable is retried)."""
    try:
        found = await secrets.request(request)
    except SecretFailure as exc:
        fail(secrets, exc.kind, str(exc), retry=exc.retry)
    if secrets.leased:
        beat()  # the lease ids reach the server before anything can lose them
    return found


async def fetched(secrets: Resolver, name: str) -> str:
    """One secret by name (a key the step names), read from the vault when it is there."""
    try:
        return await secrets.fetch(name)
    except SecretFailure as exc:
        fail(secrets, exc.kind, str(exc), retry=exc.retry)


def beat(**progress: Any) -> None:
    """Heartbeat progress, carrying this attempt's identity and the earlier failures."""
    activity.heartbeat({"failures": earlier_failures(), **_identity(), **progress})


def fail(
    secrets: Resolver, error_type: str, message: str, *, retry: bool = True, **details: Any
) -> NoReturn:
    """Raise the step's failure: a stable type, the attempt number, secrets masked.
    `retry=False` for a failure that another attempt would meet again."""
    info = activity.info()
    masked = secrets.mask(message)
    failures = [
        *earlier_failures(),
        {
            "attempt": info.attempt,
            "type": error_type,
            "message": masked[:FAILURE_MESSAGE_LIMIT],
            "started_at": iso(info.started_time),
            "failed_at": iso(_now()),
            "worker": worker_identity(),
        },
    ]
    failures = failures[-MAX_KEPT_FAILURES:]
    activity.heartbeat({"failures": failures, **_identity()})  # read back by the next attempt
    # `from None`: a failure raised while handling another exception would carry that
    # one's message and traceback into history, unmasked (a parser quoting what it read).
    raise ApplicationError(
        masked,
        {"attempt": info.attempt, "failures": failures, **secrets.mask(details)},
        type=error_type,
        non_retryable=not retry,
    ) from None


def result(secrets: Resolver, output: Any) -> StepResult:
    masked = secrets.mask(output)
    size = len(json.dumps(masked, default=str))
    if size > RESULT_LIMIT:
        fail(
            secrets,
            "PayloadsTooLarge",
            f"the step's output is {size} bytes, over the {RESULT_LIMIT}-byte limit; "
            "write large data to a file and return its path",
        )
    info = activity.info()
    return {
        "output": masked,
        "attempt": info.attempt,
        "started_at": iso(info.started_time),
        "failures": earlier_failures(),
        "worker": worker_identity(),
    }
