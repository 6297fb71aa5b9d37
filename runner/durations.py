"""Durations as runbooks write them: `500ms`, `30s`, `10m`, `1h30m`, `24h`, `7d`."""

from __future__ import annotations

import re

_UNITS_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
# Units in falling order, each at most once, so "1h30m" is valid and "30m1h" is not.
PATTERN = r"^(?=\d)(\d+d)?(\d+h)?(\d+m(?!s))?(\d+s)?(\d+ms)?$"
_RE = re.compile(PATTERN)
_PART = re.compile(r"(\d+)(ms|d|h|m|s)")


def parse_ms(text: str) -> int:
    """Milliseconds in `text`; ValueError with a readable reason when it is not a duration."""
    if not isinstance(text, str) or not _RE.match(text):
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit in falling order, "
            "e.g. 500ms, 30s, 10m, 1h30m, 24h or 7d"
        )
    return sum(int(n) * _UNITS_MS[u] for n, u in _PART.findall(text))


def is_duration(text: object) -> bool:
    return isinstance(text, str) and bool(_RE.match(text))


def format_ms(ms: int) -> str:
    """The shortest canonical spelling of a duration, e.g. 5400000 -> '1h30m'."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)
