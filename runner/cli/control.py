"""Live control of a running run: pause, resume, set a fan-out's concurrency, skip items.

Each is the run's `control` Update: its validator refuses at once (exit 1 with the
reason), and an accepted action is recorded like a gate decision.
"""

from __future__ import annotations

from typing import Annotated

import typer

from runner.cli.common import err, examples, exit_with, out
from runner.contract.state import ControlJson
from runner.contract.vocab import ControlAction

Run = Annotated[str, typer.Argument(help="Run id")]
Step = Annotated[str, typer.Argument(help="The fan-out step's id")]
Comment = Annotated[str, typer.Option("--comment", "-c", help="Why")]
AsUser = Annotated[str | None, typer.Option("--as", help="Who acts (default: QLRF_USER)")]


def _control(
    run: str,
    action: ControlAction,
    as_user: str | None,
    comment: str,
    *,
    step: str | None = None,
    concurrency: int | None = None,
    items: list[str] | None = None,
) -> None:
    import asyncio

    from runner.app.context import connected
    from runner.app.control import ControlAsk, control
    from runner.cli.identity import current_user

    async def send() -> int:
        ctx = await connected()
        ask = ControlAsk(
            run,
            action,
            current_user(as_user),
            comment,
            step=step,
            concurrency=concurrency,
            items=list(items or []),
            as_user=as_user,
        )
        done = await control(ctx, ask)
        if done.record is None:
            err(f"refused: {done.refused}")
            return 1
        out(_said(run, done.record))
        return 0

    exit_with(asyncio.run(send()))


def _said(run: str, record: ControlJson) -> str:
    action, by = record.get("action"), record.get("by")
    if action == ControlAction.PAUSE:
        return (
            f"run {run} paused by {by}: nothing new starts, what runs finishes; "
            f"`qlrf-run resume {run}` goes on"
        )
    if action == ControlAction.RESUME:
        return f"run {run} resumed by {by}"
    if action == ControlAction.CONCURRENCY:
        return (
            f"step {record.get('step')} of {run} now runs {record.get('concurrency')} items at once"
        )
    items = ", ".join(record.get("items") or [])
    return f"step {record.get('step')} of {run} leaves out {items} (those not started yet), by {by}"


def pause(run: Run, comment: Comment = "", as_user: AsUser = None) -> None:
    """Start no new step or item until `resume`; what runs now finishes."""
    _control(run, ControlAction.PAUSE, as_user, comment)


def resume(run: Run, comment: Comment = "", as_user: AsUser = None) -> None:
    """Go on with a paused run."""
    _control(run, ControlAction.RESUME, as_user, comment)


def set_(
    run: Run,
    step: Step,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Items of the fan-out at once")
    ],
    comment: Comment = "",
    as_user: AsUser = None,
) -> None:
    """Change how many items of a fan-out step run at once, also while it runs."""
    _control(run, ControlAction.CONCURRENCY, as_user, comment, step=step, concurrency=concurrency)


def skip(
    run: Run,
    step: Step,
    items: Annotated[list[str], typer.Argument(help="Items to leave out, as `status` names them")],
    comment: Comment = "",
    as_user: AsUser = None,
) -> None:
    """Leave items of a running fan-out step out; those already started finish."""
    _control(run, ControlAction.SKIP, as_user, comment, step=step, items=items)


def register(app: typer.Typer) -> None:
    run = "patch-fleet-3f2a9c1d0e4b"
    app.command(epilog=examples(f"qlrf-run pause {run} -c 'incident INC-42'"))(pause)
    app.command(epilog=examples(f"qlrf-run resume {run}"))(resume)
    app.command("set", epilog=examples(f"qlrf-run set {run} patch --concurrency 5"))(set_)
    app.command(epilog=examples(f"qlrf-run skip {run} patch web-3 web-7 -c 'decommissioned'"))(skip)
