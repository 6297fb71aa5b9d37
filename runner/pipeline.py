"""Validate and compile one runbook with its inputs: the first half of `plan` and `apply`.

Child runbooks (`runbook` steps) are validated and compiled into the parent's plan
here, so a run never reads files: editing a file cannot change a run in flight.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.contract.messages import Inputs
from runner.dsl.diagnostics import Diagnostic
from runner.errors import InputError, QlrfError, UsageError
from runner.plan.model import Plan

if TYPE_CHECKING:
    from runner.dsl.validate import Checked

MAX_CHILD_DEPTH = 8


class InvalidRunbook(QlrfError):
    """The file has errors; the diagnostics say which."""

    def __init__(self, file: str, diagnostics: list[Diagnostic]) -> None:
        self.file = file
        self.diagnostics = diagnostics
        super().__init__(f"{file} is not valid")


@dataclass
class Compiled:
    plan: Plan
    inputs: Inputs
    warnings: list[Diagnostic]
    missing_required: list[str]
    source: bytes  # the file exactly as it was read and compiled

    @property
    def source_text(self) -> str:
        return self.source.decode("utf-8")

    @property
    def source_sha256(self) -> str:
        return hashlib.sha256(self.source).hexdigest()


def require_file(path: Path, what: str = "runbook") -> None:
    """UsageError unless `path` is a regular file: not missing, a directory, a FIFO,
    a device, a socket or a symlink loop."""
    from runner.files import check_regular

    check_regular(path, what)


def read_inputs_file(path: Path) -> Inputs:
    """--inputs-file: a YAML or JSON mapping of input values."""
    from runner.dsl.loader import load_file

    require_file(path, "inputs file")
    doc = load_file(path)
    if doc.diagnostics:
        raise InputError("; ".join(d.text() for d in doc.diagnostics))
    if not isinstance(doc.data, dict):
        raise InputError(f"{path}: an inputs file holds a mapping of input names to values")
    return doc.data


def _child_path(parent: Path, params: Any) -> Path:
    from runner.resources import data_dir

    if "file" in params:
        return parent.parent / str(params["file"])
    name = params["ref"].split("/", 1)[1]
    return data_dir("definitions") / "runbooks" / f"{name}.yaml"


def compile_checked(path: Path, stack: tuple[Path, ...] = ()) -> tuple[Plan, Checked, bytes]:
    """Validate and compile one file and, recursively, the runbooks it calls."""
    from runner.dsl.test_language import is_test_document
    from runner.dsl.validate import collector_paused, default_validator
    from runner.plan.compiler import compile_plan

    validator = default_validator()
    checked, source = validator.check_source(path)
    if is_test_document(checked.doc.data):
        raise UsageError(f"{path} is a test file (kind: Test); run it with `qlrf-run test {path}`")
    if not checked.ok:
        raise InvalidRunbook(str(path), checked.diagnostics)
    here = path.resolve()

    def locate(where: tuple[Any, ...]) -> str:
        line, col = checked.doc.at(where)
        return f"{line}:{col}"

    def resolve_child(params: Any, step_id: str) -> Plan:
        child = _child_path(path, params)
        if child.resolve() in (*stack, here):
            chain = " -> ".join(p.name for p in (*stack, here, child.resolve()))
            raise QlrfError(f"{path}: step '{step_id}' calls runbooks in a cycle: {chain}")
        if len(stack) >= MAX_CHILD_DEPTH:
            raise QlrfError(f"{path}: runbooks call each other more than {MAX_CHILD_DEPTH} deep")
        plan, _, _ = compile_checked(child, (*stack, here))
        return plan

    with collector_paused():
        plan = compile_plan(validator.registry, checked.doc.data, str(path), locate, resolve_child)
    return plan, checked, source


def compile_file(
    file: Path,
    input_pairs: list[str] | None = None,
    inputs_file: Path | None = None,
    *,
    require_inputs: bool = True,
) -> Compiled:
    """Validate, compile and resolve the inputs; InvalidRunbook or InputError otherwise.

    With require_inputs=False (for `plan`), missing required inputs are listed
    instead of refused, so the graph can be shown before the values are known.
    """
    from runner.plan import inputs as run_inputs

    require_file(file)
    plan, checked, source = compile_checked(file)
    declared = checked.doc.data.get("inputs") or {}
    given: Inputs = {}
    if inputs_file is not None:
        given.update(read_inputs_file(inputs_file))
    given.update(run_inputs.parse_assignments(list(input_pairs or []), declared))
    missing = [
        name
        for name, decl in declared.items()
        if decl.get("required") and "default" not in decl and name not in given
    ]
    if require_inputs or not missing:
        values = run_inputs.resolve(declared, given)
    else:
        present = {n: d for n, d in declared.items() if n not in missing}
        values = run_inputs.resolve(present, given)
        values.update(dict.fromkeys(missing))
    warnings = [d for d in checked.diagnostics if d.severity == "warning"]
    return Compiled(plan, values, warnings, missing, source)
