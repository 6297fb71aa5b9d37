"""Effective retry policies and timeouts: the step type's, then `defaults`, then the step's.

Merged field by field, so a step that sets only `max_attempts` keeps the type's
backoff and its non-retryable errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
BASE_RETRY: dict[str, Any] = {
    "max_attempts": 1,
    "initial_interval": "1s",
    "backoff_coefficient": 2.0,
    "max_interval": "1m",
    "non_retryable_errors": [],
}


def merge_retry(*layers: Any) -> dict[str, Any]:
    """Later layers win, field by field; layers that are not mappings are ignored."""
    out = dict(BASE_RETRY)
    for layer in layers:
        if isinstance(layer, Mapping):
            out.update({k: v for k, v in layer.items() if k in RETRY_FIELDS})
    return out


def as_timeouts(value: Any) -> dict[str, Any]:
    """`timeout: 30m` means start_to_close; a mapping names each timeout."""
    if isinstance(value, str):
        return {"start_to_close": value}
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k in TIMEOUT_FIELDS}
    return {}


def merge_timeouts(*layers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
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
