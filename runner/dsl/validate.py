"""The front end: load a file, check it against the schema, then run every semantic check."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from runner.catalog.registry import Registry
from runner.dsl.checks import graph, notify, shell, values
from runner.dsl.checks.locks import detect_lock_problems
from runner.dsl.checks.templates import detect_template_problems
from runner.dsl.diagnostics import Diagnostic, has_errors
from runner.dsl.document import Document
from runner.dsl.language import runbook_schema
from runner.dsl.loader import load_source, load_text
from runner.dsl.model import RunbookView, build
from runner.dsl.schema_check import DocumentChecker, SchemaChecker
from runner.dsl.test_language import is_test_document
from runner.resources import data_dir


@dataclass
class Checked:
    """A loaded document, its step view and everything found wrong with it."""

    doc: Document
    view: RunbookView
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


class Validator:
    """Builds the schema validator once; check as many files as you like with it."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.schema = runbook_schema(registry)
        # A runbook is checked against the runbook branch of the published root (which
        # selects a test file's schema by `kind: Test`).
        definitions = self.schema["definitions"]
        self.schema_checker = SchemaChecker(
            {**definitions["runbook"], "definitions": definitions}, registry.names()
        )
        self.test_checker = DocumentChecker({**definitions["test"], "definitions": definitions})
        # An installation without the runbook library leaves `ref:` unchecked.
        self.library: Path | None = None
        with contextlib.suppress(FileNotFoundError):
            self.library = data_dir("definitions") / "runbooks"

    def check_file(self, path: str | os.PathLike[str]) -> Checked:
        return self.check_source(path)[0]

    def check_source(self, path: str | os.PathLike[str]) -> tuple[Checked, bytes]:
        """Check a file, and return the bytes it was read from (read once)."""
        with collector_paused():
            doc, source = load_source(path)
            return self.check(doc), source

    def check_text(self, text: str, file: str = "<text>") -> Checked:
        with collector_paused():
            return self.check(load_text(text, file))

    def check(self, doc: Document) -> Checked:
        diagnostics = list(doc.diagnostics)
        view = build(doc.data)
        if doc.data is None and diagnostics:
            return Checked(doc, view, _unique(diagnostics))
        if is_test_document(doc.data):
            # A test file: its own schema here; what it names in its runbook is checked
            # by runner/testing/files.py, which `validate` calls for test files.
            diagnostics += _guarded(doc, "the schema check", lambda: self.test_checker.check(doc))
            return Checked(doc, view, _unique(diagnostics))
        diagnostics += _guarded(doc, "the schema check", lambda: self.schema_checker.check(doc))
        if not isinstance(doc.data, dict):
            return Checked(doc, view, _unique(diagnostics))
        checks: list[tuple[str, Callable[[], Iterable[Diagnostic]]]] = [
            ("detect_duplicate_ids", lambda: graph.detect_duplicate_ids(doc, view)),
            ("detect_unknown_channels", lambda: notify.detect_unknown_channels(doc)),
            ("detect_unknown_needs", lambda: graph.detect_unknown_needs(doc, view)),
            ("detect_cycles", lambda: graph.detect_cycles(doc, view)),
            ("detect_never_runs", lambda: graph.detect_never_runs(doc, view)),
            ("detect_input_problems", lambda: values.detect_input_problems(doc, view)),
            (
                "detect_retry_problems",
                lambda: values.detect_retry_problems(doc, view, self.registry),
            ),
            ("detect_timeout_problems", lambda: values.detect_timeout_problems(doc, view)),
            (
                "detect_fanout_problems",
                lambda: values.detect_fanout_problems(doc, view, self.registry),
            ),
            (
                "detect_approval_problems",
                lambda: values.detect_approval_problems(doc, view, self.registry),
            ),
            (
                "detect_error_type_names",
                lambda: values.detect_error_type_names(doc, view, self.registry),
            ),
            (
                "detect_shell_injection",
                lambda: shell.detect_shell_injection(doc, view, self.registry),
            ),
            (
                "detect_child_runbooks",
                lambda: values.detect_child_runbooks(doc, view, self.library, self.registry),
            ),
        ]
        for name, check in checks:
            diagnostics += _guarded(doc, name, check)
        used: set[str] = set()

        def templates() -> list[Diagnostic]:
            found, names = detect_template_problems(doc, view, self.registry)
            used.update(names)
            return found

        diagnostics += _guarded(doc, "the template checks", templates)

        def locks() -> list[Diagnostic]:
            found, names = detect_lock_problems(doc, view)
            used.update(names)
            return found

        diagnostics += _guarded(doc, "the lock checks", locks)
        modifiable_only = _modifiable_names(view, self.registry)
        diagnostics += _guarded(
            doc,
            "detect_unused_inputs",
            lambda: values.detect_unused_inputs(doc, view, used | modifiable_only),
        )
        return Checked(doc, view, _unique(diagnostics))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a file is checked.

    A large runbook allocates hundreds of thousands of small objects, none in
    reference cycles; each full collection rescans all of them, which made checking
    10,000 steps grow faster than linearly. Reference counting still frees memory.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _modifiable_names(view: RunbookView, registry: Registry) -> set[str]:
    # An input listed as modifiable is read by the gate, even if no template uses it.
    names: set[str] = set()
    for step in view.steps:
        step_type = registry.find(step.type)
        gate = step_type is not None and step_type.capabilities.gate
        mod = step.with_.get("modifiable") if gate else None
        names.update(n for n in (mod if isinstance(mod, list) else []) if isinstance(n, str))
    return names


def _guarded(
    doc: Document, name: str, check: Callable[[], Iterable[Diagnostic]]
) -> list[Diagnostic]:
    """A bug in one check must not hide the other diagnostics nor show a traceback."""
    try:
        return list(check())
    except Exception as exc:  # a defect of qlrf-run, reported as such
        return [
            doc.diag(
                (),
                "internal-error",
                f"qlrf-run failed inside {name} ({type(exc).__name__}: {exc}); this is a "
                "bug in qlrf-run, please report it with this file",
            )
        ]


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diagnostics))


@functools.cache
def default_validator() -> Validator:
    from runner.dsl.definitions import default_registry

    return Validator(default_registry())
