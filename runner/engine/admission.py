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
