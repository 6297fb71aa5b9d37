"""Helpers every activity shares: failures with a stable type, capped output."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.steps.secrets import Resolver

# Per stream; the tail is kept, since the end of a log says what went wrong.
OUTPUT_CAP = 64 * 1024
# A step's whole result must stay far below Temporal's 2 MiB payload limit.
RESULT_LIMIT = 1024 * 1024


def tail(data: bytes, cap: int = OUTPUT_CAP) -> str:
    text = data[-cap:].decode("utf-8", errors="replace")
    if len(data) > cap:
        return f"[... {len(data) - cap} bytes cut ...]\n{text}"
    return text


# Temporal shows the workflow only a step's last attempt. So that the run store can
# record every attempt, each failing attempt heartbeats its failure; the next attempt
# reads it back from the heartbeat details and hands the list on, to the workflow in
# the final result or error.
MAX_KEPT_FAILURES = 20
# Keep failure messages short: the list travels in heartbeats and results.
FAILURE_MESSAGE_LIMIT = 1000


def earlier_failures() -> list[dict[str, Any]]:
    """The failures of this step's earlier attempts (from the last heartbeat)."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], dict):
        found = details[0].get("failures")
        if isinstance(found, list):
            return found
    return []


def beat(**progress: Any) -> None:
    """Heartbeat progress, carrying the earlier attempts' failures along."""
    activity.heartbeat({"failures": earlier_failures(), **progress})


def fail(secrets: Resolver, error_type: str, message: str, **details: Any) -> NoReturn:
    """Raise the step's failure: a stable type, the attempt number, secrets masked."""
    info = activity.info()
    masked = secrets.mask(message)
    failures = [
        *earlier_failures(),
        {"attempt": info.attempt, "type": error_type, "message": masked[:FAILURE_MESSAGE_LIMIT]},
    ]
    failures = failures[-MAX_KEPT_FAILURES:]
    activity.heartbeat({"failures": failures})  # read back by the next attempt
    raise ApplicationError(
        masked,
        {"attempt": info.attempt, "failures": failures, **secrets.mask(details)},
        type=error_type,
    )


def result(secrets: Resolver, output: Any) -> dict[str, Any]:
    masked = secrets.mask(output)
    size = len(json.dumps(masked, default=str))
    if size > RESULT_LIMIT:
        fail(
            secrets,
            "PayloadsTooLarge",
            f"the step's output is {size} bytes, over the {RESULT_LIMIT}-byte limit; "
            "write large data to a file and return its path",
        )
    return {"output": masked, "attempt": activity.info().attempt, "failures": earlier_failures()}
