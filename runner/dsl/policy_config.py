"""Read the worker's QLRF_POLICY: YAML checked against its own JSON Schema
(schemas/policy.schema.json), then what a schema cannot say: every group is defined,
every window and zone reads, every pattern compiles, every gate timeout is a duration.

The worker reads it as it starts and refuses to start on a bad one, naming the file,
line and key; each run reads it again with its trust snapshot (runner/steps/trust.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jsonschema

from runner import durations
from runner.dsl.diagnostics import Diagnostic
from runner.dsl.document import Document
from runner.dsl.loader import load_source
from runner.dsl.policy_schema import SCHEMA
from runner.dsl.secrets_config import translate
from runner.errors import QlrfError
from runner.suggest import hint
from runner.trust import policy

VARIABLE = "QLRF_POLICY"
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class PolicyConfigError(QlrfError):
    """The file cannot be used; the message lists each problem and where it is."""


def load(groups: Mapping[str, Sequence[str]], path: str | None = None) -> dict[str, Any] | None:
    """The policy QLRF_POLICY names, as the JSON a run takes ({"path", "sha256",
    "rules", "proposals"}); None when the variable is unset."""
    path = path if path is not None else os.environ.get(VARIABLE, "").strip()
    if not path:
        return None
    doc, raw = load_source(
        path, start_from="give its rules: and proposals: keys (docs/governance.md)"
    )
    problems = list(doc.diagnostics)
    if not problems:
        problems = sorted(set(_checked(doc, groups)))
    if problems:
        shown = "\n".join(f"  {p.text()}" for p in problems[:20])
        raise PolicyConfigError(f"{VARIABLE} names a file the worker cannot use:\n{shown}")
    data = doc.data or {}
    return {
        "path": os.path.abspath(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "rules": list(data.get("rules") or []),
        "proposals": data.get("proposals"),
    }


def _checked(doc: Document, groups: Mapping[str, Sequence[str]]) -> Iterator[Diagnostic]:
    data = doc.data
    if data is None:
        return  # an empty file: no rules
    if not isinstance(data, dict):
        yield doc.diag((), "bad-value", "the file is a mapping with rules: and proposals:")
        return
    errors = list(_VALIDATOR.iter_errors(data))
    for error in errors:
        yield from translate(doc, error)
    if errors:
        return
    for index, found in enumerate(data.get("rules") or []):
        where: tuple[Any, ...] = ("rules", index)
        for key in ("start", "approve", "operate"):
            yield from _groups(doc, (*where, key), found.get(key) or [], groups)
        windows = found.get("windows") or {}
        for key, read in (("allow", policy.allow_window), ("freeze", policy.freeze_window)):
            for at, text in enumerate(windows.get(key) or []):
                try:
                    read(text)
                except policy.PolicyError as exc:
                    yield doc.diag((*where, "windows", key, at), "bad-window", str(exc))
        glass = windows.get("break_glass")
        if glass is not None:
            yield from _quorum(doc, (*where, "windows", "break_glass"), glass, groups)
    found = data.get("proposals")
    if found is not None:
        yield from _groups(doc, ("proposals", "principals"), found["principals"], groups)
        for at, text in enumerate(found.get("forbid") or []):
            try:
                policy.pattern(text)
            except policy.PolicyError as exc:
                yield doc.diag(("proposals", "forbid", at), "bad-pattern", str(exc))
        yield from _quorum(doc, ("proposals", "gate"), found["gate"], groups)


def _quorum(
    doc: Document, where: tuple[Any, ...], data: Mapping[str, Any], groups: Mapping[str, Any]
) -> Iterator[Diagnostic]:
    yield from _groups(doc, (*where, "approvers"), data["approvers"], groups)
    timeout = data.get("timeout")
    if timeout is not None and not durations.is_duration(timeout):
        yield doc.diag((*where, "timeout"), "bad-value", f"{timeout!r} is not a duration (24h)")


def _groups(
    doc: Document, where: tuple[Any, ...], entries: Sequence[str], groups: Mapping[str, Any]
) -> Iterator[Diagnostic]:
    for at, entry in enumerate(entries):
        name = entry.removeprefix("group:")
        if entry.startswith("group:") and name not in groups:
            known = sorted(groups)
            yield doc.diag(
                (*where, at),
                "unknown-group",
                f"group '{name}' is not defined for the workers{hint(name, known)}; "
                "define it under groups: (docs/approvals.md); "
                f"groups: {', '.join(known) or 'none'}",
            )
