"""`qlrf-run apply FILE`: validate, compile, start (or attach to) the run, follow it."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from runner.cli.common import err, exit_with, out

if TYPE_CHECKING:
    from runner.pipeline import Compiled


def apply(
    file: Path = typer.Argument(..., help="Runbook file", show_default=False),
    input: list[str] = typer.Option([], "--input", "-i", help="NAME=VALUE (@path reads a file)"),
    inputs_file: Path | None = typer.Option(None, "--inputs-file", help="YAML or JSON inputs"),
    run_id: str | None = typer.Option(None, "--run-id", help="Use this run (workflow) id"),
    detach: bool = typer.Option(False, "--detach", help="Start the run and return at once"),
    as_user: str | None = typer.Option(None, "--as", help="Who starts the run"),
    format: str = typer.Option("text", "--format", "-f", help="text, or json (final state only)"),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Do not run a worker in this process (others will)"
    ),
) -> None:
    """Run a runbook: exit 0 when it succeeds, 1 when it fails."""
    from runner.cli.identity import current_user
    from runner.dsl.diagnostics import render_text
    from runner.errors import UsageError
    from runner.pipeline import InvalidRunbook, compile_file

    if format not in ("text", "json"):
        raise UsageError(f"--format {format}: choose text or json")
    try:
        compiled = compile_file(file, input, inputs_file)
    except InvalidRunbook as exc:
        err(render_text([(exc.file, exc.diagnostics)]))
        exit_with(1)
    for warning in compiled.warnings:
        err(warning.text())
    from runner.client.runs import refuse_oversized

    refuse_oversized(compiled.plan.to_dict(), compiled.inputs)  # before any server is started
    sha = compiled.source_sha256  # of the bytes compiled, read once
    import asyncio

    code = asyncio.run(
        _apply(compiled, current_user(as_user), run_id, detach, format == "json", no_worker, sha)
    )
    exit_with(code)


async def _apply(
    compiled: Compiled,
    user: str,
    run_id: str | None,
    detach: bool,
    as_json: bool,
    no_worker: bool,
    sha: str,
) -> int:
    import logging

    from runner.cli import logs
    from runner.cli.progress import Follower, summary, workflow_link
    from runner.client.connect import connect, target, task_queue
    from runner.client.runs import follow, start
    from runner.worker import build_worker

    # Step failures show in the progress lines; the SDK's own warnings would repeat them.
    logs.configure(logging.ERROR)
    where = target()
    client = await connect(where)
    handle, attached = await start(
        client,
        compiled.plan,
        compiled.inputs,
        user,
        workflow_id=run_id,
        definition_sha256=sha,
        definition_file=compiled.plan.source_file,
        definition_text=compiled.source_text,
        task_queue=task_queue(),
    )
    ids = {
        "run_id": handle.result_run_id or handle.first_execution_run_id,
        "workflow_id": handle.id,
    }
    if detach:
        verb = "attached to the open run" if attached else "started run"
        out(json.dumps({**ids, "attached": attached}) if as_json else f"{verb} {handle.id}")
        return 0
    if not as_json:
        verb = "attached to the open run" if attached else "started run"
        out(f"{verb} {handle.id} ({compiled.plan.kind} {compiled.plan.name}, as {user})")
        if where.ui_url:
            out(f"  {workflow_link(where.ui_url, handle.id)}")
    follower = Follower()
    on_state = (lambda s: None) if as_json else follower.update
    if not as_json and sys.stdin.isatty():
        from runner.cli.prompt import GatePrompt

        prompt = GatePrompt(client, handle.id, user)

        def on_state(state: dict[str, Any]) -> None:
            follower.update(state)
            prompt.update(state)

    worker = None if no_worker else build_worker(client, task_queue=task_queue())
    async with worker if worker is not None else contextlib.nullcontext():
        state = await follow(handle, on_state, client)
    if as_json:
        out(json.dumps(state, indent=2, default=str))
    else:
        out(summary(state, where.ui_url))
    return 0 if state["status"] == "succeeded" else 1


def register(app: typer.Typer) -> None:
    app.command()(apply)
