"""Load step-type definitions: the built-in ones shipped with qlrf-run, then plug-ins.

A plug-in declares an entry point in the group `qlrf_run.steps`; loading it gives
the path of its definition file (a str or Path, or a callable returning one).
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema

from runner.dsl.diagnostics import path_str
from runner.dsl.language import step_type_schema
from runner.dsl.loader import load_file
from runner.errors import DefinitionError
from runner.resources import data_dir
from runner.steps.registry import Registry, StepType

ENTRY_POINT_GROUP = "qlrf_run.steps"


def load_definition(path: Path) -> StepType:
    """Read and check one definition file; DefinitionError names the file and line."""
    doc = load_file(path)
    if doc.diagnostics:
        raise DefinitionError("\n".join(d.text() for d in doc.diagnostics))
    validator = jsonschema.Draft7Validator(step_type_schema())
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = tuple(err.absolute_path)
            line, col = doc.at(where)
            lines.append(f"{path}:{line}:{col}: {path_str(where)}: {err.message}")
        raise DefinitionError("invalid step-type definition:\n" + "\n".join(lines))
    data: dict[str, Any] = doc.data
    return StepType(
        type=data["type"],
        description=data["description"],
        runs_in=data["runs_in"],
        activity=data.get("activity"),
        errors=tuple(data["errors"]),
        params=data["params"],
        output=data["output"],
        retry=data.get("retry", {}),
        timeout=data.get("timeout", {}),
        source=os.fspath(path),
    )


def _plugin_paths() -> list[Path]:
    paths = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        target = ep.load()
        if callable(target):
            target = target()
        paths.append(Path(target))
    return paths


def builtin_paths() -> list[Path]:
    return sorted(data_dir("definitions").joinpath("steps").glob("*.yaml"))


@functools.cache
def default_registry() -> Registry:
    """The built-in step types plus installed plug-ins, loaded once per process."""
    return Registry(load_definition(p) for p in [*builtin_paths(), *_plugin_paths()])
