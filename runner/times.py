"""Times as qlrf-run shows and stores them: UTC ISO 8601 with milliseconds and a `Z`.

One spelling everywhere (status, history, evidence, pending), e.g.
`2026-12-01T10:49:11.371Z`, so that scripts can compare them as text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime | None) -> str | None:
    """`moment` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; a naive datetime is taken to be UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str | None) -> datetime | None:
    """The datetime of an ISO 8601 text (with `Z` or an offset), or None."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
