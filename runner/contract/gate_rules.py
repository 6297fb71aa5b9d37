"""Who may decide a gate, as the run judges it: one rule for the run and the page.

The run refuses a decision by these rules (runner/engine/gates.py); the web page
asks the same ones, so that it never offers a button the run would refuse. The
run stays the authority: the page only spares people a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def names(entries: Iterable[str], who: str, groups: Mapping[str, Sequence[str]]) -> bool:
    """`who` is one of `entries`: a principal, or group:NAME of the workers' groups."""
    for entry in entries:
        if entry.startswith("group:"):
            if who in groups.get(entry.removeprefix("group:"), ()):
                return True
        elif entry == who:
            return True
    return False


def may_decide(approvers: Sequence[str], by: str, groups: Mapping[str, Sequence[str]]) -> bool:
    """`by` is among the approvers, or in a group they name; a gate naming none is
    anyone's."""
    return not approvers or names(approvers, by, groups)


def not_let(
    named: str, entries: Sequence[str], who: str, groups: Mapping[str, Sequence[str]], doing: str
) -> str | None:
    """Why the policy rule `named`, whose entries are `entries`, does not let `who` do
    `doing`; None if it does. The one wording of a policy's refusal."""
    if names(entries, who, groups):
        return None
    allowed = ", ".join(entries) or "nobody"
    return f"{named} lets {allowed} {doing}; {who or 'nobody'} is not among them"


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
        problem = None if entries is None else not_let(rule["named"], entries, by, groups, doing)
        if problem is not None:
            return problem
    return None
