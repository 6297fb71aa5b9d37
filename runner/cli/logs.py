"""`qlrf-run logs RUN [STEP] [--item X] [--follow]`: what a step printed.

stdout goes to stdout and stderr to stderr, so `logs RUN STEP | grep` sees the
step's own output. While a step runs, its latest lines come from its heartbeats
(every few seconds); once it has ended, from its output in the run's state or, for
the items of a large fan-out, from the run store.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer

from runner.terminal import visible

if TYPE_CHECKING:
    import asyncio

    from runner.client.state import Snapshot

from runner.cli.common import INTERRUPTED, FormatOption, RunFormat, err, examples, exit_with, out
from runner.errors import UsageError

POLL_SECONDS = 1.0


def logs(
    run: str = typer.Argument(..., help="Run id"),
    step: str | None = typer.Argument(None, help="Step id (default: every step that printed)"),
    item: str | None = typer.Option(None, "--item", help="One item of a fan-out step"),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing until it ends"),
    format: RunFormat = FormatOption,
) -> None:
    """Show what a step printed (its stdout and stderr), also while it runs."""
    import asyncio

    if item is not None and step is None:
        raise UsageError("--item names an item of one fan-out step: give the STEP too")
    if follow and format == RunFormat.json:
        raise UsageError("--follow prints lines as they come; use it without --format json")
    exit_with(asyncio.run(_logs(run, step, item, follow, format == RunFormat.json)))


async def _logs(run: str, step: str | None, item: str | None, follow: bool, as_json: bool) -> int:
    import asyncio

    from runner.cli.runs import _handle
    from runner.client.state import snapshot

    client, handle, _ = await _handle(run)
    snap = await snapshot(handle, client, attempts=True)
    if step is None:
        return await _every_step(client, handle, snap, as_json)
    stop = asyncio.Event()
    from runner.cli.watching import ctrl_c

    with ctrl_c(stop):
        return await _one(client, handle, snap, step, item, follow, as_json, stop)


def _flushed(stream: Any) -> Any:
    """Write a line and flush it: a follower reads lines as they come, also in a pipe."""

    shown = stream.isatty()  # a person reads it: show control sequences, never obey them

    def write(line: str) -> None:
        stream.write((visible(line) if shown else line) + "\n")
        stream.flush()

    return write


def _stored(run: str, step: str, item: str | None) -> Any:
    from runner.local.postgres import database_url, store_enabled
    from runner.store.queries import step_outcome

    if not store_enabled():
        return None

    async def read() -> Any:
        return await step_outcome(database_url(), run, step, item)

    return read


async def _one(
    client: Any,
    handle: Any,
    snap: Any,
    step: str,
    item: str | None,
    follow: bool,
    as_json: bool,
    stop: asyncio.Event,
) -> int:
    import asyncio

    from runner.client.logs import Tail, printed
    from runner.client.state import snapshot

    stdout, stderr = Tail(_flushed(sys.stdout)), Tail(_flushed(sys.stderr))
    said_waiting = False
    while True:
        found = await printed(client, handle, snap, step, item, _stored(handle.id, step, item))
        beat = found.beat
        if beat is not None and not as_json:
            attempt = beat.get("attempt")
            stdout.beat(attempt, int(beat.get("stdout_lines") or 0), beat.get("stdout_tail") or [])
            stderr.beat(attempt, int(beat.get("stderr_lines") or 0), beat.get("stderr_tail") or [])
        waiting = found.status in ("pending", "waiting", "unknown") and not snap.closed
        if not follow or not (found.running or waiting):
            break
        if waiting and not said_waiting and found.status != "unknown":
            err(f"step {step} has not started yet ({found.status}); waiting for it")
            said_waiting = True
        await asyncio.wait([asyncio.ensure_future(stop.wait())], timeout=POLL_SECONDS)
        if stop.is_set():
            err(f"stopped following; the run goes on: qlrf-run logs {handle.id} {step} --follow")
            return INTERRUPTED
        snap = await snapshot(handle, client, attempts=True)
    output = found.output if isinstance(found.output, dict) else None
    if as_json:
        tail = (beat or {}) if found.running else {}
        out(
            json.dumps(
                {
                    "run_id": handle.id,
                    "step": step,
                    "item": item,
                    "status": found.status,
                    "attempt": found.attempt,
                    "exit_code": (output or {}).get("exit_code"),
                    "stdout": (output or {}).get("stdout")
                    if not found.running
                    else "\n".join(tail.get("stdout_tail") or []),
                    "stderr": (output or {}).get("stderr")
                    if not found.running
                    else "\n".join(tail.get("stderr_tail") or []),
                    "output": None if output is not None else found.output,
                    "error": found.error,
                },
                indent=2,
                default=str,
            )
        )
        return 0
    if found.running:
        err(f"(step {step} is still running; --follow keeps printing until it ends)")
        return 0
    if found.status in ("pending", "waiting", "unknown") and found.output is None:
        what = f"item {item} of step {step}" if item else f"step {step}"
        err(f"{what} has printed nothing yet ({found.status})")
        return 0
    if output is not None and ("stdout" in output or "stderr" in output):
        stdout.finish(output.get("stdout"), found.attempt)
        stderr.finish(output.get("stderr"), found.attempt)
    elif found.output is not None:
        out(json.dumps(found.output, indent=2, default=str))
    if found.error:
        err(f"{found.status}: {found.error.get('type')}: {found.error.get('message')}")
    return 0


async def _every_step(client: Any, handle: Any, snap: Snapshot, as_json: bool) -> int:
    from runner.client.logs import printed

    shown: list[dict[str, Any]] = []
    for sid in snap.view.steps:
        found = await printed(client, handle, snap, sid, None)
        output = found.output if isinstance(found.output, dict) else {}
        text = {k: output.get(k) for k in ("stdout", "stderr") if output.get(k)}
        if found.running and found.beat:
            text = {
                k: "\n".join(found.beat.get(f"{k}_tail") or [])
                for k in ("stdout", "stderr")
                if found.beat.get(f"{k}_tail")
            }
        if text:
            shown.append({"step": sid, "status": found.status, **text})
    if as_json:
        out(json.dumps({"run_id": handle.id, "steps": shown}, indent=2))
        return 0
    if not shown:
        out(f"no step of run {handle.id} has printed anything yet")
    for entry in shown:
        out(f"== {entry['step']} ({entry['status']}) ==")
        if entry.get("stdout"):
            out(entry["stdout"].rstrip("\n"))
        if entry.get("stderr"):
            err(entry["stderr"].rstrip("\n"))
    return 0


def register(app: typer.Typer) -> None:
    run = "patch-fleet-3f2a9c1d0e4b"
    app.command(
        epilog=examples(
            f"qlrf-run logs {run}",
            f"qlrf-run logs {run} backup --follow",
            f"qlrf-run logs {run} patch --item web-3",
            f"qlrf-run logs {run} backup --format json",
        )
    )(logs)
