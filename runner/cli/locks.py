"""`qlrf-run locks`: who holds each lock key, and who waits for it, in order."""

from __future__ import annotations

import json
from typing import Any

import typer

from runner.cli.common import FormatOption, RunFormat, examples, out


def _who(entry: dict[str, Any]) -> str:
    step = f" (step {entry['step']})" if entry.get("step") else ""
    return f"run {entry.get('run')}{step}"


def locks(format: RunFormat = FormatOption) -> None:
    """Every lock key held or waited for: its holder since when, and its waiters in order.

    One visibility call: it answers without a worker.
    """
    import asyncio

    from runner.client.connect import connect, target
    from runner.client.locks import locks as lock_rows
    from runner.times import human_until

    async def go() -> list[dict[str, Any]]:
        return await lock_rows(await connect(target()))

    rows = asyncio.run(go())
    if format == RunFormat.json:
        out(json.dumps(rows, indent=2))
        return
    if not rows:
        out("no lock is held")
        return
    for row in rows:
        # Keys come from runbooks' inputs: out() shows control characters, never obeys.
        holder = row.get("holder")
        held = (
            f"held by {_who(holder)} since {human_until(holder.get('since'))}"
            if holder
            else "being handed on"
        )
        out(f"{row['key']}: {held}")
        for place, waiter in enumerate(row["waiters"], 1):
            since = human_until(waiter.get("queued_at"))
            out(f"    {place}. {_who(waiter)}, waiting since {since}")
        more = row["waiting"] - len(row["waiters"])
        if more > 0:
            out(f"    and {more} more")


def register(app: typer.Typer) -> None:
    app.command(epilog=examples("qlrf-run locks", "qlrf-run locks --format json"))(locks)
