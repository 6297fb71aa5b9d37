"""Who may decide a gate, as the run judges it: one rule for the run and the page.

The run refuses a decision by these rules (runner/engine/gates.py); the web page
asks the same ones, so that it never offers a button the run would refuse. The
run stays the authority: the page only spares people a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from runner.contract.vocab import DecisionKind, GateStatus


class GateLike(Protocol):
    @property
    def gate(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def approvers(self) -> list[str]: ...
    @property
    def allow_self_approval(self) -> bool | None: ...
    @property
    def approvals(self) -> Sequence[Mapping[str, Any]]: ...


def may_decide(approvers: Sequence[str], by: str, groups: Mapping[str, Sequence[str]]) -> bool:
    """`by` is among the approvers, or in a group they name; a gate naming none is
    anyone's."""
    if not approvers:
        return True
    for entry in approvers:
        if entry.startswith("group:"):
            if by in groups.get(entry.removeprefix("group:"), []):
                return True
        elif entry == by:
            return True
    return False


def who_refusal(
    gate: GateLike,
    by: str,
    kind: str,
    *,
    started_by: str | None,
    groups: Mapping[str, Sequence[str]],
) -> str | None:
    """Why `by` may not take decision `kind` at `gate` now, in the run's words; None
    if they may (the values of a modify are checked by the run)."""
    if gate.status != GateStatus.WAITING:
        return f"gate '{gate.gate}' is not waiting: it is {gate.status}"
    if not by:
        return "the decision does not say who decides (by)"
    if not may_decide(gate.approvers, by, groups):
        return f"{by} may not decide gate '{gate.gate}'; approvers: {', '.join(gate.approvers)}"
    if kind == DecisionKind.APPROVE:
        if by == started_by and not gate.allow_self_approval:
            return (
                f"{by} started this run and may not approve it "
                "(allow_self_approval is false); ask another approver"
            )
        if any(a.get("by") == by for a in gate.approvals):
            return (
                f"{by} has already approved gate '{gate.gate}'; the quorum counts distinct people"
            )
    return None


def policy_refusal(
    policy: Mapping[str, Any] | None,
    by: str,
    groups: Mapping[str, Sequence[str]],
    key: str,
    doing: str,
) -> str | None:
    """Why the run's policy (RunView.policy) does not let `by` do `doing` under its
    rules' `key` (approve, operate); None if it does. The run judges the same rules
    (runner/trust/policy.py); this spares people a refusal."""
    for rule in (policy or {}).get("rules") or []:
        entries = rule.get(key)
        if entries is None:
            continue
        if not any(
            (e.startswith("group:") and by in groups.get(e.removeprefix("group:"), [])) or e == by
            for e in entries
        ):
            allowed = ", ".join(entries) or "nobody"
            return f"{rule.get('named')} lets {allowed} {doing}; {by or 'nobody'} is not among them"
    return None
