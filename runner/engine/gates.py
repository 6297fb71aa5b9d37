"""Approval gates: their state, the rules a decision must pass, and the desk that keeps them.

Pure code, shared by the `decide` Update's validator (which refuses before anything
is written to history) and the `decide` signal (checked the same way in the
workflow, a refusal recorded in the state).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.contract.gate_rules import may_decide, who_refusal
from runner.contract.messages import Decision, Declaration
from runner.contract.state import (
    ApprovalJson,
    DecisionJson,
    GateView,
    ModificationJson,
    RefusedJson,
)
from runner.contract.vocab import DecisionKind, GateStatus
from runner.engine import render
from runner.engine.run_state import RunState
from runner.plan.inputs import value_problem
from runner.times import iso


@dataclass
class Gate:
    gate: str
    step: str
    message: str
    approvers: list[str]
    min_approvals: int
    allow_self_approval: bool
    modifiable: list[str]
    on_timeout: str
    opened_at: datetime
    deadline: datetime
    message_template: str = ""  # rendered again after a modify
    status: str = GateStatus.WAITING
    approvals: list[ApprovalJson] = field(default_factory=list)
    decisions: list[DecisionJson] = field(default_factory=list)
    modifications: list[ModificationJson] = field(default_factory=list)
    refused: list[RefusedJson] = field(default_factory=list)

    def view(self) -> GateView:
        return GateView(
            gate=self.gate,
            step=self.step,
            status=self.status,
            message=self.message,
            approvers=self.approvers,
            min_approvals=self.min_approvals,
            allow_self_approval=self.allow_self_approval,
            modifiable=self.modifiable,
            on_timeout=self.on_timeout,
            approvals=self.approvals,
            decisions=self.decisions,
            modifications=self.modifications,
            round=len(self.modifications),  # each modify opens a new round of approval
            refused=self.refused,
            waiting_since=iso(self.opened_at),
            deadline=iso(self.deadline),
        )


def allowed(gate: Gate, by: str, groups: dict[str, list[str]]) -> bool:
    return may_decide(gate.approvers, by, groups)


def refusal(
    gates: dict[str, Gate],
    decision: Decision,
    *,
    started_by: str,
    groups: dict[str, list[str]],
    declarations: Mapping[str, Declaration],
) -> str | None:
    """Why `decision` cannot be accepted now, in words for the person deciding; None if it
    can. What does not read as a decision at all is refused by Decision.parse."""
    gate = gates.get(decision.gate)
    if gate is None:
        known = ", ".join(sorted(gates)) or "none has opened yet"
        return f"no gate '{decision.gate}' in this run (gates: {known})"
    problem = who_refusal(
        gate, decision.by, decision.decision, started_by=started_by, groups=groups
    )
    if problem is not None:
        return problem
    if decision.decision == DecisionKind.MODIFY:
        for key, value in (decision.set or {}).items():
            if key not in gate.modifiable:
                allowed_keys = ", ".join(gate.modifiable) or "none"
                return f"input '{key}' is not modifiable at gate '{gate.gate}' ({allowed_keys})"
            problem = value_problem(declarations.get(key, {}), value)
            if problem:
                return f"input '{key}': {problem}"
    return None


class GateDesk:
    """The run's gates: opening them, judging decisions, and applying the accepted ones."""

    def __init__(self, run: RunState) -> None:
        self.run = run
        self.gates: dict[str, Gate] = {}
        self.refused_signals: list[RefusedJson] = []  # signals naming no gate
        # The worker's policy on who may decide (engine/governance.py), from POLICY on.
        self.policy: Callable[[str, str], str | None] | None = None

    def open(self, gate: Gate) -> None:
        self.gates[gate.gate] = gate

    def waiting(self) -> list[str]:
        return sorted(g.gate for g in self.gates.values() if g.status == GateStatus.WAITING)

    def refusal(self, decision: Decision) -> str | None:
        problem = refusal(
            self.gates,
            decision,
            started_by=self.run.started_by,
            groups=self.run.groups,
            declarations=self.run.declarations,
        )
        if problem is None and self.policy is not None:
            problem = self.policy(decision.gate, decision.by)
        return problem

    def refuse(self, decision: Any, reason: str, now: datetime) -> None:
        """Keep a refused signal in the state: unlike an Update, a signal is never bounced."""
        gate = self.gates.get(str(decision.get("gate"))) if isinstance(decision, dict) else None
        record: RefusedJson = {"at": iso(now), "decision": decision, "reason": reason}
        (gate.refused if gate is not None else self.refused_signals).append(record)

    def apply(self, decision: Decision, now: datetime) -> tuple[Gate, DecisionJson]:
        """Apply an accepted decision; returns the gate and the decision's record."""
        gate = self.gates[decision.gate]
        at = iso(now)
        kind, by = str(decision.decision), decision.by
        comment = decision.comment
        verified = decision.verified  # proven by signature (signed mode)
        record: DecisionJson = {
            "decision": kind,
            "by": by,
            "verified": verified,
            "at": at,
            "comment": comment,
        }
        via = dict(decision.via) if decision.via else None
        if via:  # only when vouched or certified: runs before it replay unchanged
            record["via"] = via
        if kind == DecisionKind.APPROVE:
            approval: ApprovalJson = {"by": by, "verified": verified, "at": at, "comment": comment}
            if via:
                approval["via"] = via
            gate.approvals.append(approval)
            if len(gate.approvals) >= gate.min_approvals:
                gate.status = GateStatus.APPROVED
        elif kind == DecisionKind.REJECT:
            gate.status = GateStatus.REJECTED
        else:
            changes = self.run.change_inputs(dict(decision.set or {}))
            record["changes"] = changes
            modification: ModificationJson = {
                "by": by,
                "verified": verified,
                "at": at,
                "comment": comment,
                "changes": changes,
            }
            if via:
                modification["via"] = via
            gate.modifications.append(modification)
            gate.approvals.clear()  # what was approved has changed: ask again
            # The message may name inputs that changed: render it again.
            with contextlib.suppress(render.TemplateFailure):
                gate.message = str(render.render(gate.message_template, self.run.context()))
        gate.decisions.append(record)
        self.run.touch(urgent=True)
        return gate, record
