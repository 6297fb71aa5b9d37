"""Activity implementations by name, and the check that every registered type has one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.catalog.registry import Registry
from runner.contract import (
    EVIDENCE_ACTIVITY,
    HTTP_ACTIVITY,
    NOTIFY_ACTIVITY,
    SHELL_ACTIVITY,
    SQL_ACTIVITY,
    SSH_ACTIVITY,
)
from runner.errors import DefinitionError
from runner.steps.evidence import evidence
from runner.steps.http import http
from runner.steps.notify import notify
from runner.steps.shell import shell
from runner.steps.sql import sql
from runner.steps.ssh import ssh

BUILTIN: dict[str, Callable[..., Any]] = {
    SHELL_ACTIVITY: shell,
    HTTP_ACTIVITY: http,
    NOTIFY_ACTIVITY: notify,
    SQL_ACTIVITY: sql,
    SSH_ACTIVITY: ssh,
    EVIDENCE_ACTIVITY: evidence,
}


def for_registry(
    registry: Registry, overrides: dict[str, Callable[..., Any]] | None = None
) -> list[Callable[..., Any]]:
    """The activity of every step type that runs as one; fails at start-up if one is missing."""
    available = {**BUILTIN, **(overrides or {})}
    chosen = []
    for step_type in registry:
        if step_type.runs_in != "activity":
            continue
        name = step_type.activity or step_type.type
        if name not in available:
            raise DefinitionError(
                f"step type '{step_type.type}' ({step_type.source}) names activity '{name}', "
                "which this worker does not have"
            )
        chosen.append(available[name])
    return chosen
