"""Helpers shared by the commands: output formats, reading inputs, exiting."""

from __future__ import annotations

import enum
import sys
from typing import NoReturn

import typer


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
