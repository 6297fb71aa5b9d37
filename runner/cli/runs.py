"""Commands on runs that exist: status, list, cancel, history."""

from __future__ import annotations

import json
from typing import Any

import typer

from runner.cli.common import err, exit_with, out
from runner.errors import UsageError


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
    run: str = typer.Argument(..., help="Run (workflow) id"),
    format: str = typer.Option("text", "--format", "-f", help="text or json"),
) -> None:
    """Show a run's steps, attempts, times and errors."""
    from runner.cli.progress import status_text
    from runner.client.runs import state_of

    async def go() -> dict[str, Any]:
        client, handle, where = await _handle(run)
        state = await state_of(handle, client)
        state["_ui"] = where.ui_url
        return state

    import asyncio

    state = asyncio.run(go())
    ui = state.pop("_ui")
    out(json.dumps(state, indent=2, default=str) if format == "json" else status_text(state, ui))


def list_runs(
    kind: str | None = typer.Option(None, "--kind", help="Campaign, Drill, Runbook or Task"),
    state: str | None = typer.Option(
        None, "--state", help="running, succeeded, failed, cancelled or timed_out"
    ),
    limit: int = typer.Option(50, "--limit", help="At most this many runs"),
    format: str = typer.Option("text", "--format", "-f", help="text or json"),
    store: bool = typer.Option(False, "--store", help="Read the run store, not Temporal"),
) -> None:
    """List runs, newest first, through Temporal visibility (or the run store)."""
    from runner.client.runs import status_query

    if state and state not in ("running", "succeeded", "failed", "cancelled", "timed_out"):
        raise UsageError(
            f"--state {state}: choose running, succeeded, failed, cancelled or timed_out"
        )

    async def go() -> list[dict[str, Any]]:
        client, _ = await _client()
        rows = []
        async for wf in client.list_workflows(status_query(kind, state), limit=limit):
            attrs = wf.typed_search_attributes
            from runner.client.runs import KIND_KEY, NAME_KEY

            rows.append(
                {
                    "workflow_id": wf.id,
                    "run_id": wf.run_id,
                    "name": attrs.get(NAME_KEY),
                    "kind": attrs.get(KIND_KEY),
                    "status": _status_name(wf.status),
                    "started_at": wf.start_time.isoformat() if wf.start_time else None,
                    "finished_at": wf.close_time.isoformat() if wf.close_time else None,
                }
            )
        return rows

    import asyncio

    if store:
        from runner.local.postgres import database_url
        from runner.store.queries import runs as stored_runs

        rows = asyncio.run(stored_runs(database_url(), kind, state, limit))
    else:
        rows = asyncio.run(go())
    if format == "json":
        out(json.dumps(rows, indent=2))
        return
    if not rows:
        out("no runs")
        return
    for row in rows:
        out(
            f"{row['workflow_id']:<48} {row['kind'] or '-':<9} {row['status']:<10} "
            f"{row['started_at']}"
        )


def _status_name(status: Any) -> str:
    names = {
        "RUNNING": "running",
        "COMPLETED": "succeeded",
        "FAILED": "failed",
        "CANCELED": "cancelled",
        "TERMINATED": "terminated",
        "TIMED_OUT": "timed_out",
    }
    return names.get(getattr(status, "name", ""), str(status).lower())


def cancel(
    run: str = typer.Argument(..., help="Run (workflow) id"),
    wait: bool = typer.Option(False, "--wait", help="Wait until compensation and finally end"),
) -> None:
    """Cancel a run: running steps stop, compensations and `finally` run."""
    from runner.client.runs import follow

    async def go() -> int:
        from runner.client.runs import request_cancel

        _, handle, _ = await _handle(run)
        refused = await request_cancel(handle)
        if refused:
            err(refused)
            return 1
        out(f"cancel requested for {run}; compensations and finally steps run next")
        if wait:
            state = await follow(handle, lambda s: None)
            out(f"run {run}: {state['status']}")
        return 0

    import asyncio

    exit_with(asyncio.run(go()))


def history(
    run: str = typer.Argument(..., help="Run (workflow) id"),
    format: str = typer.Option("text", "--format", "-f", help="text or json"),
) -> None:
    """The run's events, oldest first: from the run store, else from Temporal's history.

    The store keeps runs after Temporal's retention has removed them.
    """
    from runner.client.history import events_of
    from runner.local.postgres import database_url, store_enabled
    from runner.store.queries import run_history

    async def go() -> list[dict[str, Any]]:
        if store_enabled():
            stored = await run_history(database_url(), run)
            if stored is not None:
                return stored
        _, handle, _ = await _handle(run)
        return await events_of(handle)

    import asyncio

    events = asyncio.run(go())
    if format == "json":
        out(json.dumps(events, indent=2, default=str))
        return
    for e in events:
        where = f" {e['step']}" if e["step"] else ""
        if e.get("item") is not None:
            where += f" [{e['item']}]"
        attempt = f" attempt {e['attempt']}" if e["attempt"] else ""
        detail = f"  {e['detail']}" if e["detail"] else ""
        out(f"{e['at']}  {e['event']:<16}{where}{attempt}{detail}")


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command("list")(list_runs)
    app.command()(cancel)
    app.command()(history)
