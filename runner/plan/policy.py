"""Effective retry policies and timeouts: the step type's, then `defaults`, then the step's.

Merged field by field, so a step that sets only `max_attempts` keeps the type's
backoff and its non-retryable errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from runner import durations

RETRY_FIELDS = (
    "max_attempts",
    "initial_interval",
    "backoff_coefficient",
    "max_interval",
    "non_retryable_errors",
)
TIMEOUT_FIELDS = ("start_to_close", "schedule_to_close", "schedule_to_start", "heartbeat")


# Temporal's own defaults, for fields no layer sets.
# A step's `retry:` and `timeout:` as runbooks write them (durations as text).
class RetryJson(TypedDict, total=False):
    max_attempts: int
    initial_interval: str
    backoff_coefficient: float
    max_interval: str
    non_retryable_errors: list[str]


class TimeoutsJson(TypedDict, total=False):
    start_to_close: str
    schedule_to_close: str
    schedule_to_start: str
    heartbeat: str


BASE_RETRY: RetryJson = {
    "max_attempts": 1,
    "initial_interval": "1s",
    "backoff_coefficient": 2.0,
    "max_interval": "1m",
    "non_retryable_errors": [],
}


def merge_retry(*layers: Any) -> RetryJson:
    """Later layers win, field by field; layers that are not mappings are ignored."""
    out: dict[str, Any] = dict(BASE_RETRY)
    for layer in layers:
        if isinstance(layer, Mapping):
            out.update({k: v for k, v in layer.items() if k in RETRY_FIELDS})
    return cast(RetryJson, out)


def as_timeouts(value: Any) -> TimeoutsJson:
    """`timeout: 30m` means start_to_close; a mapping names each timeout."""
    if isinstance(value, str):
        return {"start_to_close": value}
    if isinstance(value, Mapping):
        return cast(TimeoutsJson, {k: v for k, v in value.items() if k in TIMEOUT_FIELDS})
    return {}


def merge_timeouts(*layers: Any) -> TimeoutsJson:
    out: TimeoutsJson = {}
    for layer in layers:
        out.update(as_timeouts(layer))
    return out


def retry_problems(retry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for values that are each valid but wrong together or out of range."""
    problems: list[tuple[str, str]] = []
    try:
        initial = durations.parse_ms(retry["initial_interval"])
        maximum = durations.parse_ms(retry["max_interval"])
    except (ValueError, KeyError, TypeError):
        return problems  # a bad duration is reported where it is written
    if initial <= 0:
        problems.append(("initial_interval", "initial_interval must be longer than 0"))
    if maximum < initial:
        problems.append(
            (
                "max_interval",
                f"max_interval ({retry['max_interval']}) is shorter than initial_interval "
                f"({retry['initial_interval']}); make it at least as long",
            )
        )
    return problems
