"""approve, reject and modify: one decision at one gate of one run.

In signed mode (the run's basis says so, or this machine is set up to sign) the
decision carries an SSH signature over the claim the run will check, built from the
run's own answer; `--as` is refused there, since who decides is the key's principal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.app import updates
from runner.app.context import Context
from runner.app.proof import Signer, prove, refuse_as_early
from runner.app.reach import Unreached, described, reach
from runner.client import signing
from runner.contract import DECIDE
from runner.contract.messages import Basis, Decision, JsonObject
from runner.contract.state import GateView
from runner.contract.vocab import DecisionKind
from runner.plan.inputs import parse_assignments


@dataclass
class DecideRequest:
    run: str
    gate: str
    decision: DecisionKind
    by: str  # who says they decide (claimed mode)
    comment: str = ""
    assignments: Sequence[str] = ()  # modify: NAME=VALUE, converted by the run's types
    # modify from a front end that is not this machine's user: NAME=VALUE read as text
    # only (never `@FILE`), or values already typed (the JSON API's `set`)
    files: bool = True
    changes: Mapping[str, Any] | None = None
    as_user: str | None = None  # given with --as: refused when the decision is signed
    signer: Signer | None = None  # a service vouching for its signed-in person
    # The gate's round the person saw (a Slack message's button): refused once the gate
    # was modified since, so nobody approves what they were not shown.
    round: int | None = None


@dataclass
class Decided:
    """The gate after the decision, as the run answered it."""

    gate: GateView
    decision: DecisionKind
    by: str
    verified: bool
    sent_as_signal: bool = False
    refused: str | None = None  # the run's reason, when it refused
    no_gate: bool = False  # the run has no such gate (open now or before)

    @property
    def accepted(self) -> bool:
        return self.refused is None


async def decide(ctx: Context, ask: DecideRequest) -> Decided:
    """Send the decision as the run's `decide` Update: refused or accepted, with why."""
    if ask.signer is None:
        refuse_as_early(ask.as_user)
    try:
        reached = await reach(ctx, ask.run, DECIDE)
    except Unreached as exc:
        return Decided(GateView(ask.gate), ask.decision, ask.by, False, refused=str(exc))
    if ask.gate not in reached.basis.rounds:
        known = ", ".join(sorted(reached.basis.rounds)) or "none has opened yet"
        why = f"no gate '{ask.gate}' in this run (gates: {known})"
        return Decided(GateView(ask.gate), ask.decision, ask.by, False, refused=why, no_gate=True)
    now = reached.basis.rounds[ask.gate]
    if ask.round is not None and ask.round != now:
        why = (
            f"gate '{ask.gate}' was modified since this message (it asks round {now} now, "
            "not the one shown here); review it again before you decide"
        )
        return Decided(GateView(ask.gate), ask.decision, ask.by, False, refused=why)
    payload = await payload_for(ask, reached.basis)
    try:
        answer = await updates.send(reached, DECIDE, payload)
    except Unreached as exc:
        return Decided(GateView(ask.gate), ask.decision, ask.by, False, refused=str(exc))
    gate = GateView.from_json(answer)
    mine = gate.decisions[-1] if gate.decisions else None
    by = mine["by"] if mine else ask.by
    return Decided(gate, ask.decision, by, bool(mine and mine["verified"]))


async def decide_by_signal(ctx: Context, ask: DecideRequest) -> Decided:
    """The same decision as a signal, for a client that can only signal: the run checks
    it the same way, and a refusal shows in its state (nothing answers here)."""
    handle, _ = await described(ctx, ask.run)
    if signing.wanted_here() or ask.decision == DecisionKind.MODIFY:
        # A signature, or a value converted by its type, needs the run's own answer.
        reached = await reach(ctx, ask.run, DECIDE)
        payload = await payload_for(ask, reached.basis)
    else:
        payload = _claimed(ask, {})
    await handle.signal(DECIDE, payload)
    return Decided(GateView(ask.gate), ask.decision, ask.by, False, sent_as_signal=True)


def _claimed(ask: DecideRequest, changes: JsonObject) -> JsonObject:
    return Decision(
        gate=ask.gate,
        decision=ask.decision,
        by=ask.by,
        comment=ask.comment,
        set=changes if ask.decision == DecisionKind.MODIFY else None,
    ).to_json()


async def payload_for(ask: DecideRequest, basis: Basis) -> JsonObject:
    """The decision as it travels: its `set` converted by the run's declarations, and
    signed over the run's own basis in signed mode (proof.py)."""
    changes: JsonObject = {}
    if ask.decision == DecisionKind.MODIFY and ask.changes is not None:
        changes = dict(ask.changes)  # typed already; the run checks each value
    elif ask.decision == DecisionKind.MODIFY:
        changes = parse_assignments(
            list(ask.assignments), dict(basis.declarations), "--set", files=ask.files
        )
    return await prove(
        _claimed(ask, changes), basis, DECIDE, as_user=ask.as_user, signer=ask.signer
    )
