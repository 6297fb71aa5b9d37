"""The beat of a worker's background checks: now, then every few seconds, until it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def ticks(stop: asyncio.Event, seconds: float) -> AsyncIterator[None]:
    """Yield at once, then every `seconds`, until `stop` is set (which ends the wait)."""
    while not stop.is_set():
        yield
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
