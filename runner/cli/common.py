"""Helpers shared by the commands: output formats, options, exiting."""

from __future__ import annotations

import enum
import sys
from typing import Any, NoReturn

import typer

from runner.terminal import visible

INTERRUPTED = 130  # the exit status after Ctrl-C


class DiagFormat(enum.StrEnum):
    text = "text"
    json = "json"
    github = "github"


class PlanFormat(enum.StrEnum):
    text = "text"
    json = "json"
    mermaid = "mermaid"


class RunFormat(enum.StrEnum):
    text = "text"
    json = "json"


class Kind(enum.StrEnum):
    Campaign = "Campaign"
    Drill = "Drill"
    Runbook = "Runbook"
    Task = "Task"


class EvidenceFormat(enum.StrEnum):
    json = "json"
    md = "md"


def format_option(default: enum.StrEnum) -> Any:
    """`--format/-f`, its choices listed in --help and checked (exit 2 otherwise)."""
    return typer.Option(default, "--format", "-f", help="Output format", show_default=True)


FormatOption: Any = format_option(RunFormat.text)
NoColorOption: Any = typer.Option(
    False, "--no-color", help="No colour, also in a terminal (so does NO_COLOR=1)"
)


def examples(*lines: str) -> str:
    """An --help epilog of example command lines (\\b keeps click from rewrapping it)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines) + "\n"


def out(text: str) -> None:
    _write(sys.stdout, text)


def err(text: str) -> None:
    _write(sys.stderr, text)


def _write(stream: Any, text: str) -> None:
    line = text if text.endswith("\n") else text + "\n"
    if stream.isatty():  # what a run wrote is shown to a person, never obeyed
        line = visible(line[:-1]) + "\n"
    stream.write(line)
    stream.flush()  # a line at a time, also into a log file or a pipe (a worker's)


def exit_with(code: int) -> NoReturn:
    raise typer.Exit(code)


def compiled_or_exit(file: Any, inputs: list[str], inputs_file: Any) -> Any:
    """The file validated and compiled with its inputs; exit 1 with every problem, as
    `validate` prints them, when it is not a valid runbook. Warnings go to stderr."""
    from runner.dsl.diagnostics import render_text
    from runner.pipeline import InvalidRunbook, compile_file

    try:
        compiled = compile_file(file, inputs, inputs_file)
    except InvalidRunbook as exc:
        err(render_text([(exc.file, exc.diagnostics)]))
        exit_with(1)
    for warning in compiled.warnings:
        err(warning.text())
    return compiled
