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


def fail(secrets: Resolver, error_type: str, message: str, **details: Any) -> NoReturn:
    """Raise the step's failure: a stable type, the attempt number, secrets masked."""
    raise ApplicationError(
        secrets.mask(message),
        {"attempt": activity.info().attempt, **secrets.mask(details)},
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
    return {"output": masked, "attempt": activity.info().attempt}
