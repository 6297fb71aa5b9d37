"""Following a run until it ends, or until the person following stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from runner.client.state import Snapshot, snapshot

POLL_SECONDS = 1.0
# Following waits anyway: a large run's state may take a moment to answer.
FOLLOW_QUERY_SECONDS = 2.0


async def follow(
    handle: WorkflowHandle[Any, Any],
    on_snapshot: Callable[[Snapshot], None],
    client: Client | None = None,
    *,
    stop: asyncio.Event | None = None,
    poll: float = POLL_SECONDS,
) -> Snapshot | None:
    """Look at the run every `poll` seconds until it closes; its final snapshot, or None
    when `stop` was set first (the run goes on)."""
    closed = asyncio.ensure_future(_wait_closed(handle))
    stopped = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Future())
    try:
        while not closed.done():
            with contextlib.suppress(RPCError):  # a look that failed: the next one tries again
                found = await snapshot(
                    handle, client, attempts=True, query_seconds=FOLLOW_QUERY_SECONDS
                )
                if found.closed:
                    break
                on_snapshot(found)
            await asyncio.wait([closed, stopped], timeout=poll, return_when="FIRST_COMPLETED")
            if stopped.done():
                return None
    finally:
        for task in (closed, stopped):
            if not task.done():
                task.cancel()
    final = await snapshot(handle, client)
    on_snapshot(final)
    return final


async def _wait_closed(handle: WorkflowHandle[Any, Any]) -> None:
    with contextlib.suppress(Exception):  # the outcome is read from the state
        await handle.result()
