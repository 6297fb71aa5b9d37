"""Helpers shared by the commands: output formats, reading inputs, exiting."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from runner.errors import InputError, UsageError


class DiagFormat(enum.StrEnum):
    text = "text"
    json = "json"
    github = "github"


class PlanFormat(enum.StrEnum):
    text = "text"
    json = "json"
    mermaid = "mermaid"


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def exit_with(code: int) -> NoReturn:
    raise typer.Exit(code)


def require_file(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a runbook file")


def read_inputs_file(path: Path) -> dict[str, Any]:
    """--inputs-file: YAML or JSON mapping of input values."""
    from runner.dsl.loader import load_file

    require_file(path)
    doc = load_file(path)
    if doc.diagnostics:
        raise InputError("; ".join(d.text() for d in doc.diagnostics))
    if not isinstance(doc.data, dict):
        raise InputError(f"{path}: an inputs file holds a mapping of input names to values")
    return doc.data
