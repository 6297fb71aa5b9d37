"""What an expected value means: equality, or matchers that must all hold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPERATORS = ("eq", "lt", "le", "gt", "ge", "contains", "matches")
_SIGNS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Matcher:
    """`{lt: 60}`, `{matches: '^ok'}`, ... (all must hold), or an exact value."""

    ops: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: Any) -> Matcher:
        """A mapping whose keys are all operators is matchers; anything else is `eq`."""
        if isinstance(raw, dict) and raw and all(k in OPERATORS for k in raw):
            return cls(dict(raw))
        return cls({"eq": raw})

    def holds(self, actual: Any) -> bool:
        return all(_holds(op, want, actual) for op, want in self.ops.items())

    def describe(self) -> str:
        parts = []
        for op, want in self.ops.items():
            if op == "eq":
                parts.append(shown(want))
            elif op in _SIGNS:
                parts.append(f"{_SIGNS[op]} {shown(want)}")
            else:
                parts.append(f"{op} {shown(want)}")
        return " and ".join(parts)


def _holds(op: str, want: Any, actual: Any) -> bool:
    if op == "eq":
        return bool(_same(want, actual))
    if op in _SIGNS:
        if not (_number(actual) and _number(want)):
            return False
        return bool(
            {
                "lt": actual < want,
                "le": actual <= want,
                "gt": actual > want,
                "ge": actual >= want,
            }[op]
        )
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(want, str) and want in actual
        if isinstance(actual, list):
            return any(_same(want, item) for item in actual)
        if isinstance(actual, dict):
            return isinstance(want, str) and want in actual
        return False
    if op == "matches":
        return isinstance(actual, str) and re.search(str(want), actual) is not None
    return False


def _same(want: Any, actual: Any) -> bool:
    """Equal as JSON: 1 == 1.0, but true is not 1."""
    if isinstance(want, bool) or isinstance(actual, bool):
        return type(want) is type(actual) and want == actual
    if _number(want) and _number(actual):
        return bool(want == actual)
    if isinstance(want, dict) and isinstance(actual, dict):
        return want.keys() == actual.keys() and all(_same(v, actual[k]) for k, v in want.items())
    if isinstance(want, list) and isinstance(actual, list):
        return len(want) == len(actual) and all(
            _same(a, b) for a, b in zip(want, actual, strict=True)
        )
    return bool(want == actual)


def shown(value: Any, limit: int = 60) -> str:
    """A value as a person reads it in a report: JSON, cut short."""
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
