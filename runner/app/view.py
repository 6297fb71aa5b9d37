"""A run's state for people: from the run itself when a worker answers, else from what
it last published (runner/client/state.py), so `status` never waits on a worker."""

from __future__ import annotations

from runner.app.context import Context
from runner.app.reach import described
from runner.client.state import Snapshot, snapshot
from runner.contract.state import RunView


async def view(ctx: Context, run: str) -> RunView:
    return (await look(ctx, run)).view


async def look(ctx: Context, run: str, *, attempts: bool = False) -> Snapshot:
    """The run's state, with what Temporal knows of its running steps' attempts."""
    handle, _ = await described(ctx, run)
    return await snapshot(handle, ctx.client, attempts=attempts)
