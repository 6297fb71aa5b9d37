"""`qlrf-run redrive RUN [--from STEP] [--reapprove]`: continue a run that did not succeed.

The new run is RUN.r<N>: what succeeded is kept, the rest runs again
(runner/client/redrive.py says exactly what).
"""

from __future__ import annotations

import json

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

    from runner.app.proof import refuse_as_early
    from runner.cli.identity import current_user

    set_no_color(no_color)
    refuse_as_early(as_user)
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
    from runner.app.redrive import RedriveRequest, redrive
    from runner.cli import sdk_logging
    from runner.cli.console import make_console
    from runner.cli.watching import finished, run_and_follow
    from runner.client.connect import task_queue
    from runner.worker import build_worker

    sdk_logging.configure(gate_notices=as_json)
    done = await redrive(RedriveRequest(run, user, start_from, reapprove))
    if done.latest is not None and not as_json:
        err(f"note: run {run} was redriven already; going on from its latest, {done.latest}")
    for note in done.notes:
        err(f"note: {note}")
    handle = done.handle
    if detach:
        out(json.dumps(done.to_json()) if as_json else f"started run {handle.id}")
        return 0
    console = make_console()
    if not as_json:
        console.print(
            f"redriving {done.redrive_of} ({done.status}) as {handle.id}: "
            f"keeps {', '.join(done.kept) or 'no step'}; runs {', '.join(done.again) or '-'}"
        )
        for sid, count in done.items_kept.items():
            console.print(f"  {sid}: {count} item(s) succeeded before and do not run again")
    client = done.ctx.client
    worker = None if no_worker else build_worker(client, task_queue=task_queue())
    state = await run_and_follow(
        client, handle, worker, as_json=as_json, console=console, ui_url=done.ctx.ui_url
    )
    return finished(state, as_json)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run redrive RUN                     # RUN: the id apply printed",
            "qlrf-run redrive RUN --from failover",
            "qlrf-run redrive RUN --reapprove --detach",
        )
    )(redrive)
