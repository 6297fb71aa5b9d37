"""The policy in the run (docs/governance.md): who may start, decide and operate it,
from which commit and when, and what a proposal may hold.

Workflow code: no I/O, no clock but `workflow.now()`. The policy comes with the
trust snapshot (runner/steps/trust.py), so a replay judges against what the run saw.
The CLI and `serve` check the same rules first, for a fast refusal; the run stays
the authority.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.engine import render
from runner.engine.failures import StepFailed
from runner.engine.inventory import from_file
from runner.plan.model import Node, Plan
from runner.trust import policy
from runner.trust.policy import Policy, Quorum, Rule, Target

# Runs from this version on take the worker's policy with their trust snapshot and
# keep to it. Asked at the start, before the snapshot (as every patch must be).
POLICY = "qlrf-policy"
# The `with` fields a proposal's `forbid` reads, as every step type names them.
SCREENED = ("command", "script", "sql")
OpenGate = Callable[[Node, dict[str, Any], str], Awaitable[Any]]


def target(plan: Plan, provenance: Mapping[str, Any] | None) -> Target:
    path = (provenance or {}).get("path")
    return Target(plan.kind, plan.name, dict(plan.labels), str(path) if path else None)


@dataclass
class Governance:
    policy: Policy
    rules: list[Rule]
    groups: Mapping[str, list[str]]
    proposer: str | None = None  # the principal who proposed the run, when it is one
    policy_gates: set[str] = field(default_factory=set)
    # Rules whose break glass was approved: the emergency covers the rest of the run.
    broken: set[int] = field(default_factory=set)
    plan_ids: set[str] | None = None  # the plan's step ids, none of the policy's gates'

    @classmethod
    def of(
        cls,
        data: Mapping[str, Any],
        plan: Plan,
        provenance: Mapping[str, Any] | None,
        started_by: str,
        groups: Mapping[str, list[str]],
    ) -> Governance:
        found = policy.from_json(data)
        rules = found.rules_for(target(plan, provenance))
        proposer = started_by if policy.proposal_of(found, started_by, groups) else None
        ids = {node.id for node in (*plan.nodes, *plan.finally_nodes)}
        return cls(found, rules, groups, proposer, plan_ids=ids)

    def view(self) -> dict[str, Any]:
        """What status shows: the policy's digest, the rules that apply, and what they add."""
        rules = []
        for r in self.rules:
            rule: dict[str, Any] = {"index": r.index, "named": r.named, "match": dict(r.match)}
            for key in ("start", "approve", "operate"):
                if getattr(r, key) is not None:
                    rule[key] = list(getattr(r, key))
            rules.append(rule)
        shown: dict[str, Any] = {"sha256": self.policy.sha256, "rules": rules}
        if self.policy_gates:
            shown["gates"] = sorted(self.policy_gates)
        if self.proposer is not None:
            shown["proposal"] = True
        return shown

    # -- the start ------------------------------------------------------------------

    def start_problem(
        self, who: str, provenance: Any, *, redrive: bool, child: bool = False
    ) -> str | None:
        """Why `who` may not start this run (a redrive: operate it again); None if they
        may. A `runbook` step's child is started by its parent's starter: it is held to
        `start` (no wrapper lets anyone start what they may not), not to `require`,
        which its parent's start met."""
        if redrive:
            return policy.refusal(self.rules, who, self.groups, "operate", "redrive its runs")
        problem = policy.refusal(self.rules, who, self.groups, "start", "start this runbook")
        if problem is not None or child:
            return problem
        if self.plan_ids is not None:
            taken = sorted(i for i in self.plan_ids if i.startswith(policy.GATE_PREFIX))
            if taken:
                return (
                    f"step '{taken[0]}' takes a name of the policy's gates "
                    f"({policy.GATE_PREFIX}...); rename it"
                )
        return policy.requirement(
            self.rules, provenance if isinstance(provenance, Mapping) else None
        )

    def proposal_problem(self, plan: Plan, context: Mapping[str, Any]) -> str | None:
        """Why a proposal may not start: a step type not allowed, too many items, a
        forbidden command; None if it passes (it still waits at the policy's gate)."""
        found = self.policy.proposals
        if self.proposer is None or found is None:
            return None
        where = "policy proposals"
        items = 0
        for node, path in _steps(plan):
            allowed = found.allow_types
            if allowed is not None and node.type not in allowed:
                return (
                    f"{where}: step '{path}' is a {node.type} step; a proposal may use "
                    f"{', '.join(allowed) or 'no step type'} only"
                )
            if node.fanout is not None and found.max_items is not None:
                if from_file(node.fanout.foreach) is not None:
                    return (
                        f"{where}: step '{path}' fans out over a file, whose items cannot be "
                        f"counted before the run; a proposal lists its items (max_items "
                        f"{found.max_items})"
                    )
                try:
                    listed = render.render(node.fanout.foreach, context)
                except render.TemplateFailure:
                    listed = None
                if not isinstance(listed, list):
                    return (
                        f"{where}: step '{path}' fans out over items not known before the "
                        f"run; a proposal lists its items (max_items {found.max_items})"
                    )
                items += len(listed)
                if items > found.max_items:
                    return (
                        f"{where}: the proposal's fan-outs hold {items} items by step "
                        f"'{path}'; max_items is {found.max_items}"
                    )
            for text in _screened(node.with_, context):
                hit = found.forbidden(text)
                if hit is not None:
                    return (
                        f"{where}: step '{path}' runs {_cut(text)!r}, which forbid {hit!r} refuses"
                    )
        return None

    def screen(self, step: str, params: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Refuse a proposal's step whose rendered command, script or sql is forbidden
        (what was rendered at the start may hold outputs known only now)."""
        found = self.policy.proposals
        if self.proposer is None or found is None or not found.forbid:
            return
        for text in _texts(params, env):
            hit = found.forbidden(text)
            if hit is not None:
                raise StepFailed(
                    "PolicyRefused",
                    f"policy proposals: step '{step}' would run {_cut(text)!r}, which forbid "
                    f"{hit!r} refuses; nothing ran",
                    1,
                )

    # -- gates ----------------------------------------------------------------------

    def closed(self, now: datetime) -> list[tuple[Rule, str]]:
        """The rules whose windows keep the run out now, and why."""
        found = []
        for rule in self.rules:
            if rule.index in self.broken:
                continue
            why = rule.closed(now)
            if why is not None:
                found.append((rule, why))
        return found

    async def gates(self, open_gate: OpenGate, now: datetime, where: str = "") -> str | None:
        """Wait at the break-glass gates the windows ask for now, then (at the start) at
        the proposal's gate; why the run may not go on, or None."""
        for rule, why in self.closed(now):
            glass = rule.break_glass
            if glass is None:
                return (
                    f"{rule.named}: {where or 'the start'} is {why}, and the rule has no "
                    "break_glass; start again inside a window"
                )
            gate_id = (
                policy.BREAK_GLASS_GATE
                + (f"/{where}" if where else "")
                + (f"/{rule.index}" if len(self.rules) > 1 else "")
            )
            message = (
                f"Break glass: {where or 'this run'} is {why} ({rule.named}). "
                "Approve only for an emergency."
            )
            problem = await self._wait(open_gate, gate_id, message, glass)
            if problem is not None:
                return problem
            self.broken.add(rule.index)
        if where or self.proposer is None or self.policy.proposals is None:
            return None
        message = (
            f"Proposal by {self.proposer}: review every step below before anything runs. "
            f"{self.proposer} may not approve it."
        )
        return await self._wait(
            open_gate, policy.PROPOSAL_GATE, message, self.policy.proposals.gate
        )

    async def _wait(
        self, open_gate: OpenGate, gate_id: str, message: str, quorum: Quorum
    ) -> str | None:
        self.policy_gates.add(gate_id)
        params = {
            "message": message,
            "approvers": list(quorum.approvers),
            "min_approvals": quorum.min_approvals,
            "timeout": quorum.timeout,
            "on_timeout": "reject",
            "allow_self_approval": False,
        }
        try:
            await open_gate(_gate_node(gate_id, message), params, gate_id)
        except StepFailed as exc:
            return exc.message
        return None

    # -- decisions and controls -----------------------------------------------------

    def decision_problem(self, gate: str, by: str) -> str | None:
        """The rules' `approve`, on top of a runbook gate's own approvers. The policy's
        own gates (break glass, the proposal) have the policy's quorum instead."""
        if gate in self.policy_gates:
            return None
        return policy.refusal(self.rules, by, self.groups, "approve", f"decide gate '{gate}'")

    def control_problem(self, by: str, action: str) -> str | None:
        return policy.refusal(self.rules, by, self.groups, "operate", f"{action} this run")


def _gate_node(gate_id: str, message: str) -> Node:
    return _bare(gate_id, message[:80], "approval", "workflow", None, {}, "policy", "QLRF_POLICY")


def _bare(
    id_: str,
    name: str,
    type_: str,
    runs_in: str,
    activity: str | None,
    with_: dict[str, Any],
    section: str,
    source: str,
) -> Node:
    """A node of its own, needing nothing: what the policy checks or waits at."""
    return Node(
        id=id_,
        name=name,
        type=type_,
        runs_in=runs_in,
        activity=activity,
        with_=with_,
        needs=(),
        trigger_rule="all_success",
        when=None,
        on_failure="fail",
        retry=None,
        timeouts=None,
        fanout=None,
        compensate=None,
        section=section,
        source=source,
    )


def _steps(plan: Plan, prefix: str = "") -> Iterator[tuple[Node, str]]:
    """Every step of the plan, its compensations and its child runbooks', with a path."""
    for node in (*plan.nodes, *plan.finally_nodes):
        path = f"{prefix}{node.id}"
        yield node, path
        if node.compensate is not None:
            comp = node.compensate
            yield (
                _bare(
                    f"{node.id}.compensate",
                    comp.name,
                    comp.type,
                    comp.runs_in,
                    comp.activity,
                    dict(comp.with_),
                    node.section,
                    node.source,
                ),
                f"{path}.compensate",
            )
        if node.child is not None:
            yield from _steps(node.child, f"{path}/")


def _screened(with_: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    """The step's command, script and sql, rendered where they can be now, and as
    written (a template needing an output not known yet is checked again as it runs)."""
    for key in SCREENED:
        if key not in with_:
            continue
        written = with_[key]
        yield from _flat(written)
        try:
            rendered = render.render(written, context)
        except render.TemplateFailure:
            continue
        yield from _flat(rendered)


def _texts(params: Mapping[str, Any], env: Mapping[str, str]) -> Iterator[str]:
    for key in SCREENED:
        if key in params:
            yield from _flat(params[key])
    script = params.get("script")
    if isinstance(script, str) and env:
        # A script sees its arguments through $QLRF_ARG_n: check it as it will run.
        expanded = script
        for name, value in sorted(env.items(), key=lambda kv: -len(kv[0])):
            expanded = expanded.replace(f"${{{name}}}", value).replace(f"${name}", value)
        yield expanded
    yield from env.values()


def _flat(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield " ".join(str(v) for v in value)
    elif value is not None:
        yield json.dumps(value, sort_keys=True)


def _cut(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."
