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


def human_duration(seconds: float | None) -> str:
    """A duration as people say it: `0.4s`, `12s`, `4m 05s`, `2h 10m`, `3d 4h`."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def between(start: str | None, end: str | None) -> float | None:
    """Seconds from one ISO time to another, or None when either is missing."""
    began, ended = parse(start), parse(end)
    if began is None or ended is None:
        return None
    return (ended - began).total_seconds()


def human_until(moment: str | None, now: datetime | None = None) -> str:
    """A deadline as people read it: `in 23h 59m (15:02 UTC)`, or `2m 10s ago`."""
    at = parse(moment)
    if at is None:
        return "-"
    now = now or datetime.now(UTC)
    left = (at - now).total_seconds()
    # The clock alone only for today (UTC): a deadline tomorrow at 09:00 says its date.
    same_day = at.astimezone(UTC).date() == now.astimezone(UTC).date()
    clock = at.strftime("%H:%M UTC") if same_day else at.strftime("%Y-%m-%d %H:%M UTC")
    if left >= 0:
        return f"in {human_duration(left)} ({clock})"
    return f"{human_duration(-left)} ago ({clock})"
