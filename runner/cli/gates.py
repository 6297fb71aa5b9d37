"""Deciding approval gates: approve, reject, modify, and the list of pending gates."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from runner.cli.common import FormatOption, RunFormat, err, examples, exit_with, out

# The options every decision command takes.
Run = Annotated[str, typer.Argument(help="Run id")]
Gate = Annotated[str, typer.Argument(help="Gate (the approval step's id)")]
Comment = Annotated[str, typer.Option("--comment", "-c", help="Why")]
AsUser = Annotated[str | None, typer.Option("--as", help="Who decides (default: QLRF_USER)")]
Signal = Annotated[bool, typer.Option("--signal", help="Send as a signal, not an update")]


def _decide(
    run: str,
    gate: str,
    kind: str,
    as_user: str | None,
    comment: str,
    changes: list[str] | None,
    signal: bool,
) -> None:
    """Send one decision and exit 0 when accepted, 1 with the reason when refused."""
    import asyncio

    from runner.app.context import connected
    from runner.app.decide import DecideRequest, decide, decide_by_signal
    from runner.cli.identity import current_user
    from runner.contract.vocab import DecisionKind

    async def send() -> int:
        ctx = await connected()
        ask = DecideRequest(
            run=run,
            gate=gate,
            decision=DecisionKind(kind),
            by=current_user(as_user),
            comment=comment,
            assignments=changes or [],
            as_user=as_user,
        )
        if signal:
            await decide_by_signal(ctx, ask)
            out(
                f"sent {kind} for gate {gate} of {run} as a signal (checked by the run itself; "
                "`qlrf-run status` shows whether it was taken)"
            )
            return 0
        done = await decide(ctx, ask)
        if not done.accepted:
            err(f"refused: {done.refused}")
            return 1
        count = f"{len(done.gate.approvals)}/{done.gate.min_approvals}"
        shown = done.by if done.verified else f"{done.by} (unverified)"
        out(f"{kind} by {shown} accepted: gate {gate} is {done.gate.status} ({count} approvals)")
        return 0

    exit_with(asyncio.run(send()))


def approve(
    run: Run, gate: Gate, comment: Comment = "", as_user: AsUser = None, signal: Signal = False
) -> None:
    """Approve a waiting gate. Exit 0 when accepted, 1 with the reason when refused."""
    _decide(run, gate, "approve", as_user, comment, None, signal)


def reject(
    run: Run, gate: Gate, comment: Comment = "", as_user: AsUser = None, signal: Signal = False
) -> None:
    """Reject a waiting gate: the approval step fails with ApprovalRejected."""
    _decide(run, gate, "reject", as_user, comment, None, signal)


def modify(
    run: Run,
    gate: Gate,
    set_: Annotated[list[str], typer.Option("--set", help="NAME=VALUE for a modifiable input")],
    comment: Comment = "",
    as_user: AsUser = None,
    signal: Signal = False,
) -> None:
    """Change modifiable inputs; the gate's approvals are cleared and it waits again."""
    _decide(run, gate, "modify", as_user, comment, set_, signal)


def pending(format: RunFormat = FormatOption) -> None:
    """Every gate waiting for a decision, across runs, with the command that decides it;
    and every run waiting in line for a lock.

    One visibility call: it answers without a worker, and fast with many runs waiting.
    """
    import asyncio

    from runner.app.context import connected
    from runner.app.pending import PendingGate, PendingLock
    from runner.app.pending import pending as waiting
    from runner.times import human_until

    async def go() -> list[PendingGate | PendingLock]:
        return await waiting(await connected())

    rows = asyncio.run(go())
    if format == RunFormat.json:
        out(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        out("no gate is waiting")
        return
    for row in rows:
        if isinstance(row, PendingLock):
            where = f" step {row.step}" if row.step else ""
            out(f"{row.run_id}{where}: {row.message}")
            out(f"    waiting since {human_until(row.waiting_since)}; see qlrf-run locks")
            continue
        gate = row.gate
        who = ", ".join(gate.approvers) or "anyone"
        out(f"{row.run_id} / {gate.gate}: {gate.message}")
        out(
            f"    approvers {who}; {len(gate.approvals)}/{gate.min_approvals} approvals; "
            f"deadline {human_until(gate.deadline)}"
        )
        out(f"    qlrf-run approve {row.run_id} {gate.gate}")


def register(app: typer.Typer) -> None:
    run, gate = "patch-fleet-3f2a9c1d0e4b", "review"
    app.command(
        epilog=examples(
            f"qlrf-run approve {run} {gate}",
            f"qlrf-run approve {run} {gate} --as alice -c 'canary looks healthy'",
        )
    )(approve)
    app.command(epilog=examples(f"qlrf-run reject {run} {gate} -c 'error rate too high'"))(reject)
    app.command(epilog=examples(f"qlrf-run modify {run} {gate} --set replicas=3 -c 'smaller'"))(
        modify
    )
    app.command(epilog=examples("qlrf-run pending", "qlrf-run pending --format json"))(pending)
