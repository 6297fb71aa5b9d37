"""What a run checks before its first step; a run that fails a check runs no step.

A client can start qlrf.Runbook through the plain Temporal API with anything as its
input, so the run checks for itself what `apply` checked before starting it: the
inputs fit their declarations (a value declared an integer, used in shell
arithmetic, must be one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.errors import InputError
from runner.plan import inputs as run_inputs
from runner.plan.model import Plan


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
