"""Live control of a running run: pause, resume, set a fan-out's concurrency, skip items.

Each is the run's `control` Update: its validator refuses at once (exit 1 with the
reason), and an accepted action is recorded like a gate decision.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from runner.cli.common import err, examples, exit_with, out

Run = Annotated[str, typer.Argument(help="Run id")]
Step = Annotated[str, typer.Argument(help="The fan-out step's id")]
Comment = Annotated[str, typer.Option("--comment", "-c", help="Why")]
AsUser = Annotated[str | None, typer.Option("--as", help="Who acts (default: QLRF_USER)")]


def _control(run: str, request: dict[str, Any], as_user: str | None, comment: str) -> None:
    import asyncio

    async def send() -> int:
        from runner.cli.identity import current_user
        from runner.client.connect import connect, target
        from runner.client.runs import update

        client = await connect(target())
        request.update(by=current_user(as_user), comment=comment, as_user=as_user)
        accepted, detail = await update(client, run, "control", request)
        if not accepted:
            err(f"refused: {detail}")
            return 1
        out(_said(run, detail))
        return 0

    exit_with(asyncio.run(send()))


def _said(run: str, record: dict[str, Any]) -> str:
    action, by = record["action"], record["by"]
    if action == "pause":
        return (
            f"run {run} paused by {by}: nothing new starts, what runs finishes; "
            f"`qlrf-run resume {run}` goes on"
        )
    if action == "resume":
        return f"run {run} resumed by {by}"
    if action == "concurrency":
        return f"step {record['step']} of {run} now runs {record['concurrency']} items at once"
    items = ", ".join(record["items"])
    return f"step {record['step']} of {run} leaves out {items} (those not started yet), by {by}"


def pause(run: Run, comment: Comment = "", as_user: AsUser = None) -> None:
    """Start no new step or item until `resume`; what runs now finishes."""
    _control(run, {"action": "pause"}, as_user, comment)


def resume(run: Run, comment: Comment = "", as_user: AsUser = None) -> None:
    """Go on with a paused run."""
    _control(run, {"action": "resume"}, as_user, comment)


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
    _control(
        run, {"action": "concurrency", "step": step, "concurrency": concurrency}, as_user, comment
    )


def skip(
    run: Run,
    step: Step,
    items: Annotated[list[str], typer.Argument(help="Items to leave out, as `status` names them")],
    comment: Comment = "",
    as_user: AsUser = None,
) -> None:
    """Leave items of a running fan-out step out; those already started finish."""
    _control(run, {"action": "skip", "step": step, "items": items}, as_user, comment)


def register(app: typer.Typer) -> None:
    run = "patch-fleet-3f2a9c1d0e4b"
    app.command(epilog=examples(f"qlrf-run pause {run} -c 'incident INC-42'"))(pause)
    app.command(epilog=examples(f"qlrf-run resume {run}"))(resume)
    app.command("set", epilog=examples(f"qlrf-run set {run} patch --concurrency 5"))(set_)
    app.command(epilog=examples(f"qlrf-run skip {run} patch web-3 web-7 -c 'decommissioned'"))(skip)
