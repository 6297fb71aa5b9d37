"""The local activity through which runs write to the store.

The workflow keeps an outbox of numbered events and flushes it through this
activity; Temporal retries it with backoff while PostgreSQL is down, and the run
carries on meanwhile. Writes are idempotent, so a retry never duplicates a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any, cast

import asyncpg
from temporalio import activity

from runner.contract import STORE_ACTIVITY
from runner.contract.events import StoreWrite
from runner.contract.messages import JsonObject
from runner.store.db import open_store
from runner.store.records import write

# One pool per event loop of this worker process, by the loop's id, with a weak
# reference to tell a loop that has ended from a new one given the same id.
_POOLS: dict[int, tuple[weakref.ReferenceType[asyncio.AbstractEventLoop], asyncpg.Pool]] = {}


async def pool() -> asyncpg.Pool:
    from runner.local.postgres import database_url

    loop = asyncio.get_running_loop()
    _forget_ended(loop)
    entry = _POOLS.get(id(loop))
    if entry is not None and entry[0]() is loop:
        return entry[1]
    dsn = await asyncio.to_thread(database_url)
    found = await open_store(dsn)
    _POOLS[id(loop)] = (weakref.ref(loop), found)
    return found


def _forget_ended(current: asyncio.AbstractEventLoop) -> None:
    """Close the pools of event loops that have ended (a worker started again on a new
    loop, each test's asyncio.run): kept, their connections count against the
    server's limit for as long as this process lives."""
    ended = []
    for key, (ref, _) in _POOLS.items():
        loop = ref()
        if loop is not current and (loop is None or loop.is_closed()):
            ended.append(key)
    for key in ended:
        _, stale = _POOLS.pop(key)
        with contextlib.suppress(Exception):  # its loop is gone: closing may not work
            stale.terminate()


# Refused for what a value holds, not for the connection: writing it again cannot help.
DATA_ERRORS = (asyncpg.DataError, UnicodeError, ValueError, OverflowError)
REFUSED = "$qlrf_refused"


def degraded(batch: StoreWrite, reason: str) -> StoreWrite:
    """The batch with every value a row carries beyond its names replaced by why the
    store refused it: the rows themselves (and the chain through them) are kept."""
    placeholder = {REFUSED: reason[:500]}
    events: list[Any] = []
    for event in batch["events"]:
        kept: JsonObject = dict(event)
        for key in ("output", "error", "detail"):
            if kept.get(key) is not None:
                kept[key] = placeholder
        events.append(kept)
    run = batch.get("run")
    if run is not None:
        run = {**run, **{k: placeholder for k in ("inputs", "outputs", "error") if run.get(k)}}
        run["inputs"] = run.get("inputs") or {}
    return cast(StoreWrite, {**batch, "run": run, "events": events})


@activity.defn(name=STORE_ACTIVITY)
async def store_record(raw: JsonObject) -> int:
    # Typed loosely where it arrives: the run's outbox made it (contract.events).
    batch = cast(StoreWrite, raw)
    try:
        return await _write(batch)
    except DATA_ERRORS as exc:
        # A value PostgreSQL cannot take must never hold the run: record the rows with
        # the reason in place of the values. A write retried forever would keep the run
        # open for ever, and lose every row after it.
        reason = f"the run store refused this value ({type(exc).__name__}: {exc})"
        activity.logger.warning("run %s: %s", batch["run_id"], reason)
        return await _write(degraded(batch, reason))


async def _write(batch: StoreWrite) -> int:
    try:
        return await write(await pool(), batch)
    except (
        TimeoutError,
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
    ):
        # The server is down or restarting: drop this process's pool so that the
        # retry connects afresh.
        stale = _POOLS.pop(id(asyncio.get_running_loop()), None)
        if stale is not None:
            stale[1].terminate()
        raise


async def close_pool() -> None:
    """Close this event loop's pool: before the database it points at goes away."""
    found = _POOLS.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found[1].close()
