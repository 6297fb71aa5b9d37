"""`qlrf-run locks`: who holds each lock key, and who waits for it, in order."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from runner.cli.common import FormatOption, RunFormat, examples, out

if TYPE_CHECKING:
    from runner.contract.wire import LockHolder


def _who(entry: LockHolder) -> str:
    step = f" (step {entry['step']})" if entry.get("step") else ""
    return f"run {entry.get('run')}{step}"


def locks(format: RunFormat = FormatOption) -> None:
    """Every lock key held or waited for: its holder since when, and its waiters in order.

    One visibility call: it answers without a worker.
    """
    import asyncio

    from runner.app.context import connected
    from runner.app.locks import LockRow
    from runner.app.locks import locks as lock_rows
    from runner.times import human_until

    async def go() -> list[LockRow]:
        return await lock_rows(await connected())

    rows = asyncio.run(go())
    if format == RunFormat.json:
        out(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        out("no lock is held")
        return
    for row in rows:
        # Keys come from runbooks' inputs: out() shows control characters, never obeys.
        holder = row.holder
        held = (
            f"held by {_who(holder)} since {human_until(holder.get('since'))}"
            if holder
            else "being handed on"
        )
        out(f"{row.key}: {held}")
        for place, waiter in enumerate(row.waiters, 1):
            since = human_until(waiter.get("queued_at"))
            out(f"    {place}. {_who(waiter)}, waiting since {since}")
        more = row.waiting - len(row.waiters)
        if more > 0:
            out(f"    and {more} more")


def register(app: typer.Typer) -> None:
    app.command(epilog=examples("qlrf-run locks", "qlrf-run locks --format json"))(locks)
