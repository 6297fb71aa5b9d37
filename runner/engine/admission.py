"""What a run checks before its first step; a run that fails a check runs no step.

A client can start qlrf.Runbook through the plain Temporal API with anything as its
input, so the run checks for itself what `apply` checked before starting it: the
inputs fit their declarations (a value declared an integer, used in shell
arithmetic, must be one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.contract import RunInput
from runner.errors import InputError
from runner.plan import inputs as run_inputs
from runner.plan.model import Plan


def admitted_plan(request: RunInput) -> tuple[Plan | None, str | None]:
    """The run's plan, or why its input cannot be run at all: a field of the wrong JSON
    type, or a plan that does not read. Checked before anything else, so that such a
    run fails at once (InvalidRunInput) instead of failing its first task for ever."""
    texts = ("started_by", "definition_sha256", "definition_file", "definition_text")
    for name in texts:
        if not isinstance(getattr(request, name), str):
            return None, f"the run's {name} is not text"
    if not isinstance(request.record, bool):
        return None, "the run's record is not true or false"
    for name in (*texts, "inputs", "groups", "redrive", "proof", "plan"):
        where = run_inputs.nul_at(getattr(request, name), name)
        if where is not None:
            return None, (
                f"the run's {where} holds a NUL character (\\0), which no command or record "
                "can carry"
            )
    inputs = request.inputs
    if not isinstance(inputs, Mapping) or not all(isinstance(k, str) for k in inputs):
        return None, "the run's inputs are not a mapping of names to values"
    groups = request.groups
    if not isinstance(groups, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
        for k, v in groups.items()
    ):
        return None, "the run's groups are not a mapping of group names to member lists"
    if not isinstance(request.plan, Mapping):
        return None, "the run's plan is not a mapping"
    try:
        plan = Plan.from_dict(request.plan)
    except Exception as exc:  # any shape error: a plan qlrf-run did not compile
        return None, f"the run's plan does not read ({type(exc).__name__}: {exc})"[:500]
    return plan, None


def input_problem(plan: Plan, inputs: Mapping[str, Any]) -> str | None:
    """Why the run's inputs do not fit its plan's declarations; None when they do."""
    declared = plan.declarations()
    given = {k: v for k, v in inputs.items() if not (v is None and k in declared)}
    try:
        run_inputs.resolve(declared, given)
    except InputError as exc:
        return f"the run's inputs do not fit the runbook: {exc}"
    return None


def redrive_problem(plan: Plan, redrive: Any) -> str | None:
    """Why a run's `redrive` (what it keeps from the run it continues) is malformed;
    None when it is absent or well formed. A client of the plain Temporal API could
    send anything there, and the run must refuse it, not crash on it."""
    if redrive is None:
        return None
    if not isinstance(redrive, Mapping):
        return "the run's redrive is not a mapping of what it keeps"
    steps, items, of = redrive.get("steps") or {}, redrive.get("items") or {}, redrive.get("of")
    if not isinstance(of, str) or not of:
        return "the run's redrive does not name the run it continues"
    if not isinstance(steps, Mapping) or not isinstance(items, Mapping):
        return "the run's redrive keeps steps and items as mappings"
    known = {n.id for n in plan.nodes}
    fanouts = {n.id for n in plan.nodes if n.fanout is not None}
    unknown = sorted(str(s) for s in steps if s not in known)
    unknown += sorted(str(s) for s in items if s not in fanouts)
    if unknown:
        return f"the run's redrive keeps what the plan has not: {', '.join(unknown[:5])}"
    for sid, keys in items.items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return f"the run's redrive keeps the items of {sid} as a list of their names"
    return None
