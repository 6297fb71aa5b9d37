"""Reaching the run store from a command: a broken URL or a server that is down is
one line naming the variable (password hidden), at once, never a traceback or a hang."""

from __future__ import annotations

import asyncio
import os

import asyncpg

from runner.environment import DATABASE_VARIABLE, hide_password, redact
from runner.errors import QlrfError
from runner.store.db import open_store
from runner.store.records import keep_definition

STORE_CONNECT_SECONDS = 5.0


def _where(url: str) -> str:
    if os.environ.get(DATABASE_VARIABLE):
        return f"the run store at {redact(url)} ({DATABASE_VARIABLE})"
    return f"the embedded run store at {redact(url)}"


async def open_checked(url: str, *, max_size: int = 2) -> asyncpg.Pool:
    """A pool on the migrated store; QlrfError, within seconds, when it is not usable."""
    try:
        return await asyncio.wait_for(
            open_store(url, min_size=1, max_size=max_size), STORE_CONNECT_SECONDS
        )
    except TimeoutError:
        raise QlrfError(
            f"cannot reach {_where(url)}: no answer within {STORE_CONNECT_SECONDS:.0f}s; "
            "check its host and port, or unset the variable to use the embedded PostgreSQL"
        ) from None
    except Exception as exc:  # asyncpg and the OS raise many kinds: all mean "not usable"
        reason = hide_password(str(exc), url) or type(exc).__name__
        raise QlrfError(
            f"cannot use {_where(url)}: {reason}; check the URL and that the server runs"
        ) from None


async def check_store(url: str, definition: tuple[str, str] | None = None) -> None:
    """Reach the run store and bring its tables up to date before a run starts.
    `definition` (sha256, text) is the runbook file about to run: it is kept."""
    pool = await open_checked(url, max_size=1)
    try:
        if definition is not None:
            await keep_definition(pool, *definition)
    finally:
        await pool.close()
