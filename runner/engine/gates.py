"""Approval gates: their state and the rules a decision must pass.

Pure code, shared by the `decide` Update's validator (which refuses before anything
is written to history) and the `decide` signal (checked the same way in the
workflow, a refusal recorded in the state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.plan.inputs import value_problem

DECISIONS = ("approve", "reject", "modify")


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
    status: str = "waiting"  # waiting | approved | rejected | timed_out
    approvals: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    modifications: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def allowed(gate: Gate, by: str, groups: dict[str, list[str]]) -> bool:
    if not gate.approvers:
        return True
    for entry in gate.approvers:
        if entry.startswith("group:"):
            if by in groups.get(entry.removeprefix("group:"), []):
                return True
        elif entry == by:
            return True
    return False


def refusal(
    gates: dict[str, Gate],
    decision: Any,
    *,
    started_by: str,
    groups: dict[str, list[str]],
    declarations: dict[str, dict[str, Any]],
) -> str | None:
    """Why `decision` cannot be accepted now, in words for the person deciding; None if it can."""
    if not isinstance(decision, dict):
        return "a decision is a mapping with gate, decision and by"
    name = decision.get("gate")
    gate = gates.get(name) if isinstance(name, str) else None
    if gate is None:
        known = ", ".join(sorted(gates)) or "none has opened yet"
        return f"no gate '{name}' in this run (gates: {known})"
    if gate.status != "waiting":
        return f"gate '{gate.gate}' is not waiting: it is {gate.status}"
    kind = decision.get("decision")
    if kind not in DECISIONS:
        return f"decision must be approve, reject or modify, not {kind!r}"
    by = decision.get("by")
    if not isinstance(by, str) or not by:
        return "the decision does not say who decides (by)"
    if not allowed(gate, by, groups):
        return f"{by} may not decide gate '{gate.gate}'; approvers: {', '.join(gate.approvers)}"
    if kind == "approve":
        if by == started_by and not gate.allow_self_approval:
            return (
                f"{by} started this run and may not approve it "
                "(allow_self_approval is false); ask another approver"
            )
        if any(a["by"] == by for a in gate.approvals):
            return (
                f"{by} has already approved gate '{gate.gate}'; the quorum counts distinct people"
            )
    if kind == "modify":
        changes = decision.get("set")
        if not isinstance(changes, dict) or not changes:
            return "a modify decision sets at least one input (set: {name: value})"
        for key, value in changes.items():
            if key not in gate.modifiable:
                allowed_keys = ", ".join(gate.modifiable) or "none"
                return f"input '{key}' is not modifiable at gate '{gate.gate}' ({allowed_keys})"
            problem = value_problem(declarations.get(key, {}), value)
            if problem:
                return f"input '{key}': {problem}"
    return None


def as_json(gate: Gate, iso: Any) -> dict[str, Any]:
    return {
        "gate": gate.gate,
        "step": gate.step,
        "status": gate.status,
        "message": gate.message,
        "approvers": gate.approvers,
        "min_approvals": gate.min_approvals,
        "allow_self_approval": gate.allow_self_approval,
        "modifiable": gate.modifiable,
        "on_timeout": gate.on_timeout,
        "approvals": gate.approvals,
        "decisions": gate.decisions,
        "modifications": gate.modifications,
        "refused": gate.refused,
        "waiting_since": iso(gate.opened_at),
        "deadline": iso(gate.deadline),
    }
