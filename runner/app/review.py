"""What a gate's approval releases, for the person about to decide it.

The run's plan is read from its own history (the start's input, which no one can
change afterwards), so the review shows the plan the run's hash names, rendered
against the run's inputs now (after any modify) as `apply --dry-run` renders it:
each released step's `with`, each fan-out's item count, waves, sizes and budgets,
and the lock keys. A template that needs an output not known yet is shown as
written. Nothing here decides: `decide` does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.app.context import Context
from runner.app.dry_run import dry_run
from runner.app.reach import described
from runner.client.state import snapshot
from runner.contract.messages import Declaration, Inputs, JsonObject
from runner.contract.state import GateView, InputChange, RunView
from runner.contract.wire import RunInput
from runner.errors import QlrfError
from runner.plan.inputs import parse_assignments
from runner.plan.model import Plan

# Plans by Temporal run id: a run's plan never changes, so a bounded cache is safe.
_PLANS: OrderedDict[str, Plan] = OrderedDict()
_PLANS_KEPT = 64


class NoGate(QlrfError):
    """The run has no such gate (yet)."""


@dataclass
class Review:
    view: RunView
    gate: GateView
    plan: Plan
    released: list[JsonObject]  # dry-run steps (runner/app/dry_run.py) the gate releases
    run_locks: list[Any]
    wave: str | None = None  # a wave's gate: the wave it opens
    declarations: dict[str, Declaration] = field(default_factory=dict)

    @property
    def inputs(self) -> Inputs:
        return dict(self.view.inputs or {})

    def to_json(self) -> JsonObject:
        return {
            "run_id": self.view.run_id,
            "gate": self.gate.to_json(),
            "plan_hash": self.plan.plan_hash,
            "inputs": self.inputs,
            "released": self.released,
            "locks": self.run_locks,
            "wave": self.wave,
        }


async def plan_of(ctx: Context, run: str) -> Plan:
    """The run's plan, from the first event of its history."""
    handle, description = await described(ctx, run)
    key = description.run_id or run
    if key in _PLANS:
        _PLANS.move_to_end(key)
        return _PLANS[key]
    async for event in handle.fetch_history_events(page_size=1):
        started = event.workflow_execution_started_event_attributes
        payloads = list(started.input.payloads)
        try:
            (request,) = await ctx.client.data_converter.decode(payloads, [RunInput])
            plan = Plan.from_dict(request.plan)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A run started through the plain Temporal API with a plan that does not
            # read: the run refused it; there is nothing to review.
            raise QlrfError(f"run {run}'s plan does not read ({type(exc).__name__})") from None
        _PLANS[key] = plan
        while len(_PLANS) > _PLANS_KEPT:
            _PLANS.popitem(last=False)
        return plan
    raise QlrfError(f"run {run} has no history to read its plan from")


def released_ids(plan: Plan, step: str) -> list[str]:
    """The gate's step and every step that needs it, directly or not, in plan order."""
    nodes = (*plan.nodes, *plan.finally_nodes)
    found = {step}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.id not in found and found & set(node.needs):
                found.add(node.id)
                changed = True
    return [node.id for node in nodes if node.id in found and node.section == "steps"]


async def review(ctx: Context, run: str, gate: str) -> Review:
    """The review of `gate` of `run`, from the run's own state and plan."""
    handle, _ = await described(ctx, run)
    view = (await snapshot(handle, ctx.client)).view
    found = view.gate(gate)
    if found is None:
        known = ", ".join(g.gate for g in view.gates) or "none has opened yet"
        raise NoGate(f"run {run} has no gate '{gate}' (gates: {known})")
    plan = await plan_of(ctx, run)
    return build(view, found, plan, view.inputs or {})


def build(view: RunView, gate: GateView, plan: Plan, inputs: Mapping[str, Any]) -> Review:
    step, _, wave = gate.gate.partition("/")
    step = gate.step or step
    shown = dry_run(plan, dict(inputs), view.started_by or "")
    wanted = set(released_ids(plan, step))
    if not wave:
        wanted.discard(step)  # an approval step releases what needs it
    if step not in {n.id for n in (*plan.nodes, *plan.finally_nodes)}:
        # The policy's gate before the first step (a proposal, break glass) releases
        # the whole run: every step is shown, rendered.
        wanted = {str(s["id"]) for s in shown["steps"]}
    released = [s for s in shown["steps"] if s["id"] in wanted]
    return Review(
        view,
        gate,
        plan,
        released,
        list(shown["locks"]),
        wave or None,
        plan.declarations(),
    )


def preview(review: Review, assignments: Sequence[str]) -> tuple[dict[str, InputChange], Review]:
    """What a modify with NAME=VALUE `assignments` would change: each input from and
    to, and the released steps rendered with the new values. InputError (a QlrfError)
    when a value does not read as its declared type, or the input is not modifiable."""
    # files=False: a person on the page must never make the service read its own files
    new = parse_assignments(list(assignments), dict(review.declarations), "set", files=False)
    for name in new:
        if name not in review.gate.modifiable:
            allowed = ", ".join(review.gate.modifiable) or "none"
            raise QlrfError(f"input '{name}' is not modifiable at this gate ({allowed})")
    current = review.inputs
    changes: dict[str, InputChange] = {
        name: {"from": current.get(name), "to": value}
        for name, value in new.items()
        if current.get(name) != value
    }
    after = build(review.view, review.gate, review.plan, {**current, **new})
    return changes, after
