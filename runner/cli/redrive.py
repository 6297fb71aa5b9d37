"""`qlrf-run redrive RUN [--from STEP] [--reapprove]`: continue a run that did not succeed.

The new run is RUN.r<N>: what succeeded is kept, the rest runs again
(runner/client/redrive.py says exactly what).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from runner.cli.common import (
    FormatOption,
    NoColorOption,
    RunFormat,
    err,
    examples,
    exit_with,
    out,
)
from runner.cli.console import set_no_color


def redrive(
    run: str = typer.Argument(..., help="The run to continue (failed, cancelled or timed out)"),
    start_from: str | None = typer.Option(
        None, "--from", help="Also run this step, and everything downstream of it, again"
    ),
    reapprove: bool = typer.Option(
        False, "--reapprove", help="Ask the approval gates again, even those approved"
    ),
    detach: bool = typer.Option(False, "--detach", help="Start the new run and return at once"),
    as_user: str | None = typer.Option(None, "--as", help="Who redrives it"),
    format: RunFormat = FormatOption,
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Do not run a worker in this process (others will)"
    ),
    no_color: bool = NoColorOption,
) -> None:
    """Continue a failed, cancelled or timed-out run as RUN.r<N>, keeping what succeeded.

    Steps that succeeded keep their outputs and do not run again; a fan-out runs only
    the items that did not succeed. Exit 0 when the new run succeeds, 1 when not.
    """
    import asyncio

    from runner.cli.identity import current_user

    set_no_color(no_color)
    code = asyncio.run(
        _redrive(
            run,
            start_from,
            reapprove,
            current_user(as_user),
            detach,
            format == RunFormat.json,
            no_worker,
        )
    )
    exit_with(code)


async def _redrive(
    run: str,
    start_from: str | None,
    reapprove: bool,
    user: str,
    detach: bool,
    as_json: bool,
    no_worker: bool,
) -> int:

    from runner.cli import sdk_logging
    from runner.cli.console import make_console
    from runner.cli.watching import finished, run_and_follow
    from runner.client import redrive as redriving
    from runner.client.connect import connect, target, task_queue
    from runner.client.runs import start
    from runner.local.postgres import store_enabled
    from runner.plan import redrive as plan_redrive
    from runner.worker import build_worker

    sdk_logging.configure(gate_notices=as_json)
    where = target()
    client = await connect(where)
    continued = await redriving.latest(client, run)
    if continued != run and not as_json:
        err(f"note: run {run} was redriven already; going on from its latest, {continued}")
    original = await redriving.original_of(client, continued)
    assert original.plan is not None
    # What it will keep, to say so; the worker decides it again, from the store.
    kept = plan_redrive.carried_over(original, start_from, reapprove)
    for note in original.notes:
        err(f"note: {note}")
    new_id = plan_redrive.redrive_id(original.run_id)
    handle, _ = await start(
        client,
        original.plan,
        original.inputs,
        user,
        workflow_id=new_id,
        definition_sha256=original.definition_sha256,
        definition_file=original.definition_file,
        record=store_enabled(),
        task_queue=task_queue(),
        redrive=plan_redrive.request(original.run_id, start_from, reapprove),
        groups=original.groups,
    )
    again = [n.id for n in original.plan.nodes if n.id not in kept["steps"]]
    items_kept: dict[str, Any] = {sid: len(keys) for sid, keys in kept["items"].items()}
    for sid in kept.get("paged") or ():
        # A fan-out from a file: the worker leaves out, by the store, what was done.
        items_kept[sid] = len(original.items.get(sid) or ())
    summary: dict[str, Any] = {
        "run_id": handle.id,
        "redrive_of": original.run_id,
        "kept": sorted(kept["steps"]),
        "again": again,
        "items_kept": items_kept,
        "source": original.source,
    }
    if detach:
        out(json.dumps(summary) if as_json else f"started run {handle.id}")
        return 0
    console = make_console()
    if not as_json:
        console.print(
            f"redriving {original.run_id} ({original.status}) as {handle.id}: "
            f"keeps {', '.join(summary['kept']) or 'no step'}; runs {', '.join(again) or '-'}"
        )
        for sid, count in items_kept.items():
            console.print(f"  {sid}: {count} item(s) succeeded before and do not run again")
    worker = None if no_worker else build_worker(client, task_queue=task_queue())
    state = await run_and_follow(
        client, handle, worker, as_json=as_json, console=console, ui_url=where.ui_url
    )
    return finished(state, as_json)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run redrive patch-campaign-3f2a",
            "qlrf-run redrive drill-8c1d --from failover",
            "qlrf-run redrive task-77aa --reapprove --detach",
        )
    )(redrive)
