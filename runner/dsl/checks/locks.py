"""Checks on `locks:`: keys are templates over inputs and run fields only, never empty,
and a step does not lock a key its run already holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jinja2

from runner import templates
from runner.dsl.checks.templates import unknown_names
from runner.dsl.diagnostics import Diagnostic, Path
from runner.dsl.document import Document
from runner.dsl.model import RunbookView

_EXPRESSIONS = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)
_ONLY = "lock keys may use only inputs and run fields, which are known before anything runs"


def _keys(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, list):
        for i, key in enumerate(value):
            if isinstance(key, str):
                yield (*path, i), key


def _normal(text: str) -> str:
    """The key's text with spacing inside expressions ignored: `{{inputs.a}}` is
    `{{ inputs.a }}`."""
    return re.sub(r"\s+", "", text)


class LockChecker:
    def __init__(self, doc: Document, view: RunbookView) -> None:
        self.doc = doc
        self.view = view
        self.env = templates.new_environment()
        self.inputs = view.inputs
        self.used: set[str] = set()
        self.out: list[Diagnostic] = []

    def run(self) -> list[Diagnostic]:
        run_keys: dict[str, str] = {}
        for path, text in _keys(self.view.data.get("locks"), ("locks",)):
            self._key(path, text)
            run_keys[_normal(text)] = text
        for step in self.view.steps:
            for path, text in _keys(step.data.get("locks"), (*step.path, "locks")):
                self._key(path, text)
                if _normal(text) in run_keys:
                    self.out.append(
                        self.doc.diag(
                            path,
                            "lock-deadlock",
                            f"the run already holds lock {text!r} for its whole length, so "
                            f"step '{step.id}' would wait for its own run for ever (the run "
                            "fails the step with LockConflict instead); drop the step's lock",
                            severity="warning",
                        )
                    )
        return self.out

    def _key(self, path: Path, text: str) -> None:
        d = self.doc.diag
        if not text.strip():
            self.out.append(d(path, "lock-key", "this lock key is empty; name what it locks"))
            return
        try:
            refs = templates.analyse(self.env, text)
        except jinja2.TemplateSyntaxError as exc:
            self.out.append(
                d(
                    path,
                    "template-syntax",
                    f"template syntax error: {(exc.message or '').rstrip('.')}; fix the key",
                )
            )
            return
        if refs.steps or refs.secrets or refs.other or refs.bare_roots:
            names = [f"steps.{s}" for s, _ in refs.steps] + [f"secrets.{s}" for s in refs.secrets]
            names += refs.other + refs.bare_roots
            self.out.append(
                d(
                    path,
                    "lock-key",
                    f"{', '.join(names)}: {_ONLY} (inputs.NAME, "
                    f"run.{', run.'.join(templates.RUN_FIELDS)})",
                )
            )
        self.out += unknown_names(self.doc, path, refs, self.inputs)
        self.used.update(refs.inputs)
        optional = [
            name
            for name in refs.inputs
            if isinstance(self.inputs.get(name), dict)
            and not self.inputs[name].get("required")
            and "default" not in self.inputs[name]
        ]
        if optional and not _EXPRESSIONS.sub("", text).strip():
            self.out.append(
                d(
                    path,
                    "lock-key",
                    f"this key is empty when inputs.{optional[0]} is not given, and a run "
                    "with an empty lock key fails; make the input required, give it a "
                    "default, or add fixed text to the key",
                    severity="warning",
                )
            )


def detect_lock_problems(doc: Document, view: RunbookView) -> tuple[list[Diagnostic], set[str]]:
    """The diagnostics of every `locks:` list, and the inputs their keys use."""
    checker = LockChecker(doc, view)
    return checker.run(), checker.used
