"""`qlrf-run apply FILE`: validate, compile, start (or attach to) the run, follow it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from runner.cli.common import (
    FormatOption,
    NoColorOption,
    RunFormat,
    compiled_or_exit,
    examples,
    exit_with,
    out,
)
from runner.cli.console import set_no_color

if TYPE_CHECKING:
    from runner.pipeline import Compiled


def apply(
    file: Path = typer.Argument(..., help="Runbook file", show_default=False),
    input: list[str] = typer.Option([], "--input", "-i", help="NAME=VALUE (@path reads a file)"),
    inputs_file: Path | None = typer.Option(None, "--inputs-file", help="YAML or JSON inputs"),
    run_id: str | None = typer.Option(None, "--run-id", help="Use this run id"),
    detach: bool = typer.Option(False, "--detach", help="Start the run and return at once"),
    as_user: str | None = typer.Option(None, "--as", help="Who starts the run"),
    format: RunFormat = FormatOption,
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Do not run a worker in this process (others will)"
    ),
    no_color: bool = NoColorOption,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Show each step's `with` rendered against the inputs, fan-outs, locks and gates; "
        "start nothing",
    ),
) -> None:
    """Run a runbook and follow it: exit 0 when it succeeds, 1 when it fails.

    Re-applying the same file with the same inputs while its run is open attaches to
    that run. Ctrl-C stops following; the run goes on (`qlrf-run watch RUN`).
    `--dry-run` shows what the run would do and starts nothing (no server, no store).
    """
    from runner.app.proof import refuse_as_early
    from runner.cli.identity import current_user

    set_no_color(no_color)
    refuse_as_early(as_user)  # this machine signs: who starts is the key's principal
    compiled = compiled_or_exit(file, input, inputs_file)
    if dry_run:
        from runner.app.dry_run import dry_run as rendered
        from runner.cli.render_plan import render_dry_run

        shown = rendered(compiled.plan, compiled.inputs, current_user(as_user))
        out(
            json.dumps(shown, indent=2, ensure_ascii=False, default=str)
            if format == RunFormat.json
            else render_dry_run(shown)
        )
        return
    from runner.client.runs import refuse_oversized

    refuse_oversized(compiled.plan.to_dict(), compiled.inputs)  # before any server is started
    import asyncio

    code = asyncio.run(
        _apply(compiled, current_user(as_user), run_id, detach, format == RunFormat.json, no_worker)
    )
    exit_with(code)


async def _apply(
    compiled: Compiled,
    user: str,
    run_id: str | None,
    detach: bool,
    as_json: bool,
    no_worker: bool,
) -> int:
    from runner.app.start import StartRequest, start
    from runner.cli import sdk_logging
    from runner.cli.console import make_console
    from runner.cli.progress import workflow_link
    from runner.cli.watching import finished, run_and_follow
    from runner.cli.web import page_url
    from runner.client.connect import task_queue

    if not no_worker:
        from runner.worker import protect_process

        protect_process()  # before any process is started: the embedded servers too
    # Step failures show in the progress lines; the SDK's own log would repeat them.
    sdk_logging.configure(gate_notices=as_json)
    started = await start(
        StartRequest(compiled, user, run_id, worker=not no_worker, follow=not detach)
    )
    handle, where = started.handle, started.ctx.where
    verb = "attached to the open run" if started.attached else "started run"
    if detach:
        said = {**started.ids, "attached": started.attached}
        out(json.dumps(said) if as_json else f"{verb} {handle.id}")
        return 0
    console = make_console()
    if not as_json:
        console.print(f"{verb} {handle.id} ({compiled.plan.kind} {compiled.plan.name}, as {user})")
        if where.ui_url:
            console.print(f"  {workflow_link(where.ui_url, handle.id)}", style="dim")
        console.print(f"  page: {page_url(handle.id)}", style="dim", soft_wrap=True)
    if started.others:
        note = others_said(started.others, task_queue())
        (make_console(stderr=True) if as_json else console).print(note, style="yellow")
    prompt = None
    if not as_json and sys.stdin.isatty():
        from runner.cli.prompt import GatePrompt

        prompt = GatePrompt(started.ctx.client, where, handle.id, user)
    state = await run_and_follow(
        started.ctx.client,
        handle,
        started.worker,
        as_json=as_json,
        console=console,
        ui_url=where.ui_url,
        prompt=prompt,
        first=started.first,
    )
    return finished(state, as_json)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run apply drill.yaml",
            "qlrf-run apply patch.yaml -i hosts=@hosts.json --as alice",
            "qlrf-run apply task.yaml --detach --format json",
            "qlrf-run apply patch.yaml -i hosts=@hosts.json --dry-run",
        )
    )(apply)


def others_said(others: list[str], queue: str) -> str:
    """Other workers poll the run's queue: its steps may run there, not here."""
    many = len(others) > 1
    return (
        f"  note: {len(others)} other worker{'s' if many else ''} "
        f"poll{'' if many else 's'} task queue {queue} ({', '.join(others)}): this run's "
        f"steps may run there, with {'their' if many else 'its'} secrets, seal key and trust "
        "file rather than this shell's; stop them, or use --no-worker to leave the run to them"
    )
