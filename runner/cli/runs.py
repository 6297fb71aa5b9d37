"""Commands on runs that exist: status, watch, list, cancel, history."""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from runner.contract.state import RunView

from runner.cli.common import (
    INTERRUPTED,
    FormatOption,
    Kind,
    NoColorOption,
    RunFormat,
    err,
    examples,
    exit_with,
    out,
)
from runner.cli.console import set_no_color

RunArgument: Any = typer.Argument(..., help="Run id (as `apply` and `list` show it)")


class State(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"
    terminated = "terminated"


async def _client() -> Any:
    from runner.client.connect import connect, target

    where = target()
    return await connect(where), where


async def _handle(run: str) -> Any:
    """(client, the run's handle, where) for a run that exists."""
    from runner.client.runs import existing

    client, where = await _client()
    return client, await existing(client, run), where


def status(
    run: str = RunArgument, format: RunFormat = FormatOption, no_color: bool = NoColorOption
) -> None:
    """Show a run's steps (in the plan's order), attempts, times, errors and waiting gates.

    With no worker running, it shows what the run last published, and says so.
    """
    import asyncio

    from runner.app.context import connected
    from runner.app.view import view
    from runner.cli.console import make_console
    from runner.cli.progress import status_lines

    set_no_color(no_color)

    async def go() -> tuple[RunView, str | None]:
        ctx = await connected()
        return await view(ctx, run), ctx.ui_url

    state, ui = asyncio.run(go())
    if format == RunFormat.json:
        out(json.dumps(state.to_json(), indent=2, default=str))
        return
    console = make_console()
    for line in status_lines(state, ui):
        console.print(line)


def watch(
    run: str = RunArgument,
    no_color: bool = NoColorOption,
) -> None:
    """Follow any run until it ends, as `apply` does: exit 0 when it succeeds, 1 when not.

    Ctrl-C stops watching; the run goes on.
    """
    import asyncio

    from runner.cli import sdk_logging
    from runner.cli.console import make_console
    from runner.cli.watching import ctrl_c, follow_for_people, stopped_following

    set_no_color(no_color)
    sdk_logging.configure()

    async def go() -> int:
        client, handle, where = await _handle(run)
        console = make_console()
        console.print(f"watching run {handle.id}")
        stop = asyncio.Event()
        with ctrl_c(stop):
            state = await follow_for_people(client, handle, console, stop=stop, ui_url=where.ui_url)
        if state is None:
            stopped_following(console, handle.id, worker_here=False)
            return INTERRUPTED
        return 0 if state.status == "succeeded" else 1

    exit_with(asyncio.run(go()))


def list_runs(
    kind: Kind | None = typer.Option(None, "--kind", help="Only runs of this kind"),
    state: State | None = typer.Option(None, "--state", help="Only runs in this state"),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many runs"),
    format: RunFormat = FormatOption,
    store: bool = typer.Option(False, "--store", help="Read the run store, not Temporal"),
) -> None:
    """List runs, newest first, through Temporal visibility (or the run store)."""
    import asyncio

    async def go() -> list[dict[str, Any]]:
        from runner.app.context import connected
        from runner.app.runs import runs

        ctx = await connected()
        return await runs(ctx, kind.value if kind else None, state.value if state else None, limit)

    if store:
        from runner.local.postgres import database_url
        from runner.store.queries import runs as stored_runs

        rows = asyncio.run(
            stored_runs(
                database_url(), kind.value if kind else None, state.value if state else None, limit
            )
        )
    else:
        rows = asyncio.run(go())
    if format == RunFormat.json:
        out(json.dumps(rows, indent=2))
        return
    if not rows:
        out("no runs")
        return
    for row in rows:
        origin = f"  (schedule {row['schedule']})" if row.get("schedule") else ""
        out(
            f"{row['run_id']:<48} {row['kind'] or '-':<9} {row['status']:<10} "
            f"{row['started_at']}{origin}"
        )


def cancel(
    run: str = RunArgument,
    wait: bool = typer.Option(False, "--wait", help="Wait until compensation and finally end"),
) -> None:
    """Cancel a run: running steps stop, compensations and `finally` run."""
    import asyncio

    async def go() -> int:
        from runner.app.context import connected
        from runner.app.control import cancel as cancel_run
        from runner.app.follow import follow
        from runner.app.reach import described
        from runner.cli.identity import current_user

        ctx = await connected()
        refused = await cancel_run(ctx, run, current_user(None))
        if refused:
            err(refused)
            return 1
        out(f"cancel requested for {run}; compensations and finally steps run next")
        if wait:
            handle, _ = await described(ctx, run)
            final = await follow(handle, lambda _: None, ctx.client)
            assert final is not None  # no stop was given
            out(f"run {run}: {final.view.status}")
        return 0

    exit_with(asyncio.run(go()))


def history(run: str = RunArgument, format: RunFormat = FormatOption) -> None:
    """The run's events, oldest first: from the run store, else from Temporal's history.

    The store keeps runs after Temporal's retention has removed them.
    """
    import asyncio

    from runner.app.context import connected
    from runner.app.history import history as events_of_run

    events = asyncio.run(events_of_run(run, connected))
    if format == RunFormat.json:
        out(json.dumps(events, indent=2, default=str))
        return
    for e in events:
        where = f" {e['step']}" if e["step"] else ""
        if e.get("item") is not None:
            where += f" [{e['item']}]"
        attempt = f" attempt {e['attempt']}" if e["attempt"] else ""
        actor = f" by {e['actor']}" if e.get("actor") else ""
        shown = (
            e["detail"] if isinstance(e["detail"], str) else json.dumps(e["detail"], default=str)
        )
        detail = f"  {shown}" if e["detail"] else ""
        out(f"{e['at']}  {e['event']:<16}{where}{attempt}{actor}{detail}")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run status patch-fleet-3f2a9c1d0e4b",
            "qlrf-run status patch-fleet-3f2a9c1d0e4b --format json | jq .steps",
        )
    )(status)
    app.command(epilog=examples("qlrf-run watch patch-fleet-3f2a9c1d0e4b"))(watch)
    app.command(
        "list",
        epilog=examples(
            "qlrf-run list --state running",
            "qlrf-run list --kind Drill --limit 10 --format json",
            "qlrf-run list --store --state failed",
        ),
    )(list_runs)
    app.command(epilog=examples("qlrf-run cancel patch-fleet-3f2a9c1d0e4b --wait"))(cancel)
    app.command(
        epilog=examples(
            "qlrf-run history patch-fleet-3f2a9c1d0e4b",
            "qlrf-run history patch-fleet-3f2a9c1d0e4b --format json",
        )
    )(history)
