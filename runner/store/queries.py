"""One-shot store access for the CLI: open, ask, close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runner.contract.events import HistoryEvent
from runner.store.db import Row
from runner.store.evidence import REDRIVE_CHAIN, Bundle, build
from runner.store.reach import open_checked
from runner.store.records import (
    chained,
    events,
    find_run,
    history,
    last_outcome,
    links,
    list_runs,
    outcomes,
)

T = TypeVar("T")


async def _with_store(dsn: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    pool = await open_checked(dsn)
    try:
        return await fn(pool, *args)
    finally:
        await pool.close()


async def run_history(dsn: str, run: str) -> list[HistoryEvent] | None:
    return await _with_store(dsn, history, run)


async def runs(dsn: str, kind: str | None, state: str | None, limit: int) -> list[Row]:
    return await _with_store(dsn, list_runs, kind, state, limit)


async def ended(dsn: str, run: str) -> tuple[Row, Any] | None:
    """A run's row and how its steps and items ended (for `redrive`); None if unknown."""

    async def ask(pool: Any) -> tuple[Row, Any] | None:
        row = await find_run(pool, run)
        if row is None:
            return None
        return row, await outcomes(pool, row["run_id"])

    return await _with_store(dsn, ask)


async def step_outcome(dsn: str, run: str, step: str, item: str | None) -> Row | None:
    return await _with_store(dsn, last_outcome, run, step, item)


async def bundle_in(pool: Any, run: str, depth: int = 0) -> Bundle | None:
    """The evidence bundle of a run, from an open pool (the evidence step's)."""
    found = await find_run(pool, run)
    if found is None:
        return None
    steps, audit = await events(pool, found["run_id"])
    redriven = None
    if found.get("redrive_of") and depth < REDRIVE_CHAIN:
        redriven = await bundle_in(pool, found["redrive_of"], depth + 1)
    record = await links(pool, found["run_id"])
    # Only a run recorded before hash chains has no record to prove; every later one
    # carries its whole record, a row that lost its link too (it breaks the chain).
    kept = record if await chained(pool, found, record) else None
    return build(found, steps, audit, redriven, kept)


async def bundle(dsn: str, run: str) -> Bundle | None:
    return await _with_store(dsn, bundle_in, run)


async def recorded(dsn: str, run: str) -> tuple[Row, list[Row], list[Row]] | None:
    """A run's row, its step events and its audit rows, oldest first (for `simulate`)."""

    async def ask(pool: Any) -> tuple[Row, list[Row], list[Row]] | None:
        found = await find_run(pool, run)
        if found is None:
            return None
        steps, audit = await events(pool, found["run_id"])
        return found, steps, audit

    return await _with_store(dsn, ask)
