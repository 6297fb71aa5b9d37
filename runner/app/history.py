"""A run's events, oldest first: from the run store, which keeps runs after Temporal's
retention removed them, else from Temporal's history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runner.app.context import Context
from runner.app.reach import described
from runner.client.history import events_of
from runner.contract.events import HistoryEvent
from runner.local.postgres import database_url, store_enabled
from runner.store.queries import run_history


async def history(run: str, connect: Callable[[], Awaitable[Context]]) -> list[HistoryEvent]:
    """`connect` is called only when the store does not have the run."""
    if store_enabled():
        stored = await run_history(database_url(), run)
        if stored is not None:
            return stored
    handle, _ = await described(await connect(), run)
    return await events_of(handle)
