"""The local activity through which runs write to the store.

The workflow keeps an outbox of numbered events and flushes it through this
activity; Temporal retries it with backoff while PostgreSQL is down, and the run
carries on meanwhile. Writes are idempotent, so a retry never duplicates a row.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from temporalio import activity

from runner.contract import STORE_ACTIVITY
from runner.store.db import open_store
from runner.store.records import write

_POOLS: dict[int, asyncpg.Pool] = {}  # one pool per event loop of this worker process


async def pool() -> asyncpg.Pool:
    from runner.local.postgres import database_url

    loop = id(asyncio.get_running_loop())
    found = _POOLS.get(loop)
    if found is None:
        dsn = await asyncio.to_thread(database_url)
        found = _POOLS[loop] = await open_store(dsn)
    return found


@activity.defn(name=STORE_ACTIVITY)
async def store_record(batch: dict[str, Any]) -> int:
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
            stale.terminate()
        raise


async def close_pool() -> None:
    """Close this event loop's pool: before the database it points at goes away."""
    found = _POOLS.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found.close()
