"""`qlrf-run schedule ...`: runbooks on a timetable (Temporal Schedules).

`create` and `update` validate and compile the file now and pin the result: the
schedule runs that definition, with those inputs, until the next `update`.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from runner.cli.common import FormatOption, RunFormat, compiled_or_exit, examples, out
from runner.errors import UsageError


class Overlap(enum.StrEnum):
    skip = "skip"
    buffer_one = "buffer_one"
    allow_all = "allow_all"


ScheduleId = Annotated[str, typer.Argument(help="Schedule id (as `schedule list` shows it)")]
Note = Annotated[str, typer.Option("--note", help="Why (kept on the schedule)")]
File = Annotated[Path, typer.Argument(help="Runbook file", show_default=False)]
Inputs = Annotated[list[str], typer.Option("--input", "-i", help="NAME=VALUE (@path reads a file)")]
InputsFile = Annotated[Path | None, typer.Option("--inputs-file", help="YAML or JSON inputs")]
Cron = Annotated[str | None, typer.Option("--cron", help="Cron expression, e.g. '0 3 * * *' (UTC)")]
Every = Annotated[str | None, typer.Option("--every", help="Interval, e.g. 15m or 24h")]

app = typer.Typer(
    help="Run runbooks on a timetable (Temporal Schedules); each pins its definition.",
    no_args_is_help=True,
    epilog=examples(
        "qlrf-run schedule create examples/drill.yaml --every 24h --id nightly-drill",
        "qlrf-run schedule list",
        "qlrf-run schedule pause nightly-drill --note 'freeze until Monday'",
    ),
)


def _when(cron: str | None, every: str | None, *, required: bool = True) -> Any:
    from runner.client.schedules import timetable
    from runner.durations import parse_ms

    if cron is None and every is None and not required:
        return None
    every_ms = None
    if every is not None:
        try:
            every_ms = parse_ms(every)
        except ValueError as exc:
            raise UsageError(f"--every: {exc}") from None
    return timetable(cron, every_ms)


async def _definition(compiled: Any) -> dict[str, Any]:
    """Keep the file in the run store (if on) and name it in every run's input."""
    from runner.local.postgres import database_url, store_enabled
    from runner.store.reach import check_store

    if store_enabled():
        await check_store(database_url(), (compiled.source_sha256, compiled.source_text))
    return {
        "definition_sha256": compiled.source_sha256,
        "definition_file": compiled.plan.source_file,
    }


def _run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


@app.command(
    epilog=examples(
        "qlrf-run schedule create examples/drill.yaml --cron '0 3 * * *' --id nightly-drill",
        "qlrf-run schedule create examples/compliance-evidence.yaml --every 6h "
        "-i hosts=@inventory.json -i known_hosts=/etc/qlrf/known_hosts",
    )
)
def create(
    file: File,
    cron: Cron = None,
    every: Every = None,
    input: Inputs = [],  # noqa: B006  (typer reads the default)
    inputs_file: InputsFile = None,
    schedule_id: Annotated[
        str | None, typer.Option("--id", help="Schedule id (default: the runbook's name)")
    ] = None,
    overlap: Annotated[
        Overlap,
        typer.Option("--overlap", help="When a run is still open at the next time"),
    ] = Overlap.skip,
    as_user: Annotated[str | None, typer.Option("--as", help="Who makes it")] = None,
) -> None:
    """Create a schedule that runs FILE, as compiled now, on a cron or an interval."""
    from runner.app.proof import refuse_as_early
    from runner.cli.identity import current_user

    refuse_as_early(as_user)
    when = _when(cron, every)
    compiled = compiled_or_exit(file, input, inputs_file)
    sid = schedule_id or compiled.plan.name

    async def go() -> None:
        from runner.client import schedules
        from runner.client.connect import connect, target, task_queue

        definition = await _definition(compiled)
        client = await connect(target())
        await schedules.create(
            client,
            sid,
            compiled.plan,
            compiled.inputs,
            when,
            overlap.value,
            current_user(as_user),
            task_queue(),
            **definition,
        )

    _run(go())
    out(f"created schedule {sid}: {compiled.plan.kind} {compiled.plan.name}, {when.text()}")


@app.command(
    epilog=examples("qlrf-run schedule update nightly-evidence examples/compliance-evidence.yaml")
)
def update(
    schedule_id: ScheduleId,
    file: File,
    cron: Cron = None,
    every: Every = None,
    input: Inputs = [],  # noqa: B006
    inputs_file: InputsFile = None,
) -> None:
    """Pin FILE, as compiled now, to the schedule (and a new timetable, if given)."""
    when = _when(cron, every, required=False)
    compiled = compiled_or_exit(file, input, inputs_file)

    async def go() -> None:
        from runner.client import schedules
        from runner.client.connect import connect, target, task_queue

        definition = await _definition(compiled)
        client = await connect(target())
        await schedules.update(
            client,
            schedule_id,
            compiled.plan,
            compiled.inputs,
            task_queue(),
            when,
            **definition,
        )

    _run(go())
    out(f"schedule {schedule_id} now runs {compiled.plan.kind} {compiled.plan.name}")


@app.command("list", epilog=examples("qlrf-run schedule list", "qlrf-run schedule list -f json"))
def list_command(format: RunFormat = FormatOption) -> None:
    """Every schedule: its runbook, timetable, whether paused, and its next run."""

    async def go() -> list[dict[str, Any]]:
        from runner.client import schedules
        from runner.client.connect import connect, target

        return await schedules.listing(await connect(target()))

    rows = _run(go())
    if format == RunFormat.json:
        out(json.dumps(rows, indent=2))
        return
    if not rows:
        out("no schedules; make one with `qlrf-run schedule create FILE --cron EXPR`")
        return
    for row in rows:
        state = "paused" if row["paused"] else f"next {row['next'] or '-'}"
        kind, name = row["kind"] or "-", row["name"] or "-"
        out(f"{row['id']:<32} {kind:<9} {name:<28} {row['when']:<20} {state}")


@app.command(epilog=examples("qlrf-run schedule describe nightly-evidence"))
def describe(schedule_id: ScheduleId, format: RunFormat = FormatOption) -> None:
    """One schedule: its runbook and inputs, timetable, state and its latest runs."""

    async def go() -> dict[str, Any]:
        from runner.client import schedules
        from runner.client.connect import connect, target

        return await schedules.describe(await connect(target()), schedule_id)

    found = _run(go())
    if format == RunFormat.json:
        out(json.dumps(found, indent=2, default=str))
        return
    out(f"schedule {found['id']}: {found['kind']} {found['name']}, {found['when']}")
    out(f"  overlap {found['overlap']}; {'paused' if found['paused'] else 'active'}")
    if found["note"]:
        out(f"  note: {found['note']}")
    out(f"  made by {found['created_by'] or '-'} from {found['definition_file'] or '-'}")
    out(f"  inputs: {json.dumps(found['inputs'], default=str)}")
    out(f"  runs so far: {found['runs']}; next: {', '.join(found['next']) or '-'}")
    for recent in found["recent"]:
        out(f"  ran {recent['run_id']} at {recent['started_at']}")


def _act(schedule_id: str, action: str, verb: str, note: str | None) -> None:
    """One call on the schedule; `note` (for pause and unpause) is kept on it. Pausing a
    paused schedule (or unpausing a running one) changes nothing, and says so."""

    async def go() -> str | None:
        from runner.cli.identity import current_user
        from runner.client import schedules
        from runner.client.connect import connect, target

        client = await connect(target())
        call = getattr(schedules, action)
        if note is None:
            await call(client, schedule_id)
            return None
        kept: str | None = await call(
            client, schedule_id, note or f"{verb} by {current_user(None)}"
        )
        return kept

    kept = _run(go())
    if kept is not None:
        out(f"schedule {schedule_id} is {verb} already" + (f" ({kept})" if kept else ""))
        return
    out(f"{verb} schedule {schedule_id}")


def _example(action: str) -> str:
    return examples(f"qlrf-run schedule {action} nightly-evidence")


@app.command(epilog=_example("pause"))
def pause(schedule_id: ScheduleId, note: Note = "") -> None:
    """Start no more runs until `unpause` (open runs go on)."""
    _act(schedule_id, "pause", "paused", note)


@app.command(epilog=_example("unpause"))
def unpause(schedule_id: ScheduleId, note: Note = "") -> None:
    """Start runs again at the schedule's times."""
    _act(schedule_id, "unpause", "unpaused", note)


@app.command(epilog=_example("trigger"))
def trigger(schedule_id: ScheduleId) -> None:
    """Start one run now, whatever the timetable."""
    _act(schedule_id, "trigger", "triggered", None)


@app.command(epilog=_example("delete"))
def delete(schedule_id: ScheduleId) -> None:
    """Delete the schedule (its runs are kept)."""
    _act(schedule_id, "delete", "deleted", None)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="schedule")
