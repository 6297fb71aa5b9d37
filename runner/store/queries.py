"""One-shot store access for the CLI: open, ask, close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runner.store.evidence import build
from runner.store.reach import open_checked
from runner.store.records import events, find_run, history, last_outcome, list_runs

T = TypeVar("T")


async def _with_store(dsn: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    pool = await open_checked(dsn)
    try:
        return await fn(pool, *args)
    finally:
        await pool.close()


async def run_history(dsn: str, run: str) -> list[dict[str, Any]] | None:
    return await _with_store(dsn, history, run)


async def runs(dsn: str, kind: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
    return await _with_store(dsn, list_runs, kind, state, limit)


async def step_outcome(dsn: str, run: str, step: str, item: str | None) -> dict[str, Any] | None:
    return await _with_store(dsn, last_outcome, run, step, item)


async def bundle_in(pool: Any, run: str) -> dict[str, Any] | None:
    """The evidence bundle of a run, from an open pool (the evidence step's)."""
    found = await find_run(pool, run)
    if found is None:
        return None
    steps, audit = await events(pool, found["run_id"])
    return build(found, steps, audit)


async def bundle(dsn: str, run: str) -> dict[str, Any] | None:
    return await _with_store(dsn, bundle_in, run)
