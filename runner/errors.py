"""The exceptions qlrf-run raises on purpose.

    QlrfError                   anything qlrf-run reports to a person
    ├── UsageError              bad command-line use (exit 2)
    │   └── InputError          an --input / --inputs-file value is wrong
    ├── DefinitionError         a step-type definition is broken (a packaging bug)
    │   └── DuplicateStepType   two definitions claim the same type
    └── UnknownStepType         a type that no definition declares

Diagnostics about a runbook file are not exceptions: they are collected
(`runner.dsl.diagnostics.Diagnostic`) so that every problem is reported at once.
"""

from __future__ import annotations


class QlrfError(Exception):
    """Base class: the message is written for the operator and ends in what to do."""


class UsageError(QlrfError):
    """The command line itself is wrong; the CLI exits with status 2."""


class InputError(UsageError):
    """A run input given on the command line does not fit its declaration."""


class DefinitionError(QlrfError):
    """A step-type definition file is invalid; qlrf-run refuses to start."""


class DuplicateStepType(DefinitionError):
    """Two step-type definitions declare the same `type`."""


class UnknownStepType(QlrfError):
    """A runbook names a step type that is not registered."""

    def __init__(self, name: str, known: list[str], suggestion: str | None) -> None:
        self.name = name
        self.known = known
        self.suggestion = suggestion
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        super().__init__(f"unknown step type '{name}'{hint}; known types: {', '.join(known)}")
