"""Validate and compile one runbook with its inputs: the shared first half of plan and apply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.cli.common import read_inputs_file, require_file
from runner.dsl.diagnostics import Diagnostic
from runner.errors import QlrfError
from runner.plan.model import Plan


class InvalidRunbook(QlrfError):
    """The file has errors; the diagnostics say which."""

    def __init__(self, file: str, diagnostics: list[Diagnostic]) -> None:
        self.file = file
        self.diagnostics = diagnostics
        super().__init__(f"{file} is not valid")


@dataclass
class Compiled:
    plan: Plan
    inputs: dict[str, Any]
    warnings: list[Diagnostic]
    missing_required: list[str]


def compile_file(
    file: Path,
    input_pairs: list[str] | None = None,
    inputs_file: Path | None = None,
    *,
    require_inputs: bool = True,
) -> Compiled:
    from runner.dsl.validate import collector_paused, default_validator
    from runner.plan import inputs as run_inputs
    from runner.plan.compiler import compile_plan

    require_file(file)
    validator = default_validator()
    checked = validator.check_file(file)
    if not checked.ok:
        raise InvalidRunbook(str(file), checked.diagnostics)
    declared = checked.doc.data.get("inputs") or {}
    given: dict[str, Any] = {}
    if inputs_file is not None:
        given.update(read_inputs_file(inputs_file))
    given.update(run_inputs.parse_assignments(list(input_pairs or []), declared))
    missing = [
        n
        for n, d in declared.items()
        if d.get("required") and "default" not in d and n not in given
    ]
    if missing and not require_inputs:
        # `plan` shows the graph without every value; apply insists on them.
        for name in missing:
            given[name] = None
        values = run_inputs.resolve(
            {n: d for n, d in declared.items() if n not in missing},
            {k: v for k, v in given.items() if k not in missing},
        )
        values.update({n: None for n in missing})
    else:
        values = run_inputs.resolve(declared, given)

    def locate(path: tuple[Any, ...]) -> str:
        line, col = checked.doc.at(path)
        return f"{line}:{col}"

    with collector_paused():
        plan = compile_plan(validator.registry, checked.doc.data, str(file), locate)
    warnings = [d for d in checked.diagnostics if d.severity == "warning"]
    return Compiled(plan, values, warnings, missing)
