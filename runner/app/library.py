"""The runbook library (QLRF_LIBRARY, a git checkout; definitions/runbooks/ by
default): the runbooks `serve` lists and starts, each compiled as `apply` compiles
it, with its git provenance; and a proposal sent as text (docs/governance.md).

Only a runbook the listing found can be started by its name: a name is never joined
to a path as given. Input values from the web are text or typed JSON, never `@file`
(which would read the service's own files into a run).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.app.provenance import provenance
from runner.contract.messages import Declaration, Inputs
from runner.errors import InputError, QlrfError
from runner.pipeline import Compiled, compile_checked
from runner.plan import inputs as run_inputs
from runner.plan.model import Plan

LIBRARY = "QLRF_LIBRARY"
DEFAULT_LIBRARY = "definitions/runbooks"
LISTED_MOST = 500
PROPOSAL_BYTES = 256 * 1024


class NotInLibrary(QlrfError):
    """No runbook of that name in the library."""


@dataclass
class Entry:
    name: str  # its path in the library, with / between folders
    path: Path
    plan: Plan | None = None
    declarations: dict[str, Declaration] = field(default_factory=dict)
    problem: str | None = None  # why it does not compile


def root() -> Path:
    return Path(os.environ.get(LIBRARY, "").strip() or DEFAULT_LIBRARY)


def entries(folder: Path | None = None) -> list[Entry]:
    """The library's runbooks (not their tests), each compiled, in name order."""
    return [_compiled_entry(name, path) for name, path in _listed(folder)]


def _listed(folder: Path | None) -> list[tuple[str, Path]]:
    """The library's runbook files by name, without their tests, hidden folders or links."""
    base = (folder or root()).resolve()
    if not base.is_dir():
        raise QlrfError(f"{LIBRARY}: {base} is not a folder of runbooks")
    found: list[tuple[str, Path]] = []
    for path in sorted([*base.rglob("*.yaml"), *base.rglob("*.yml")]):
        rel = path.relative_to(base).as_posix()
        if ".test." in path.name or any(p.startswith(".") for p in rel.split("/")):
            continue
        if path.is_symlink() or not path.is_file():
            continue  # a link could lead out of the library
        found.append((rel, path))
        if len(found) >= LISTED_MOST:
            break
    return found


def _compiled_entry(name: str, path: Path) -> Entry:
    found = Entry(name, path)
    try:
        plan, checked, _ = compile_checked(path)
        found.plan = plan
        found.declarations = dict(checked.doc.data.get("inputs") or {})
    except QlrfError as exc:
        found.problem = str(exc).splitlines()[0][:300]
    return found


def entry(name: str, folder: Path | None = None) -> Entry:
    """The runbook the listing names `name`, compiled (only it)."""
    for listed, path in _listed(folder):
        if listed == name:
            return _compiled_entry(listed, path)
    raise NotInLibrary(f"no runbook {name!r} in the library ({root()})")


def compiled(
    found: Entry,
    given: Mapping[str, Any] | None = None,
    pairs: Sequence[str] = (),
) -> tuple[Compiled, dict[str, Any]]:
    """The entry compiled with typed values (`given`, from JSON) or a form's NAME=VALUE
    `pairs`, and its provenance. InputError (a QlrfError) names a bad value."""
    plan, checked, source = compile_checked(found.path)
    return _with_inputs(plan, checked, source, given, pairs), provenance(found.path, source)


def proposal(text: str, given: Mapping[str, Any] | None = None) -> tuple[Compiled, dict[str, Any]]:
    """A runbook sent as text (an agent's proposal), compiled as a file would be."""
    raw = text.encode("utf-8")
    if len(raw) > PROPOSAL_BYTES:
        raise QlrfError(f"the runbook's text is over {PROPOSAL_BYTES} bytes")
    with tempfile.TemporaryDirectory(prefix="qlrf-proposal-") as folder:
        path = Path(folder) / "proposal.yaml"
        path.write_bytes(raw)
        _no_child_runbooks(path)
        plan, checked, source = compile_checked(path)
    shown = {"git": False, "note": "sent as text through the API (a proposal)"}
    return _with_inputs(plan, checked, source, given, ()), shown


def _with_inputs(
    plan: Plan,
    checked: Any,
    source: bytes,
    given: Mapping[str, Any] | None,
    pairs: Sequence[str],
) -> Compiled:
    declared = checked.doc.data.get("inputs") or {}
    values: Inputs = dict(run_inputs.parse_assignments(list(pairs), declared, files=False))
    for name, value in (given or {}).items():
        decl = declared.get(name)
        if not isinstance(decl, Mapping):
            raise InputError(f"input {name}: the runbook declares no input '{name}'")
        problem = run_inputs.value_problem(decl, value)
        if problem:
            raise InputError(f"input {name}: {problem}")
        values[name] = value
    resolved = run_inputs.resolve(declared, values)
    warnings = [d for d in checked.diagnostics if d.severity == "warning"]
    return Compiled(plan, resolved, warnings, [], source)


def _no_child_runbooks(path: Path) -> None:
    """A proposal names no other file: a `runbook` step would make the service read a
    runbook of its own disk into the plan."""
    from runner.dsl.loader import load_file

    data = load_file(path).data
    steps = [
        *(data.get("steps") or [] if isinstance(data, dict) else []),
        *(data.get("finally") or [] if isinstance(data, dict) else []),
    ]
    for step in steps:
        if isinstance(step, dict) and step.get("type") == "runbook":
            raise QlrfError(
                f"step '{step.get('id')}' is a runbook step; a proposal sent as text holds "
                "all its steps itself"
            )
