"""Read step-type definition files: the built-in ones shipped with qlrf-run, then plug-ins.

A plug-in declares an entry point in the group `qlrf_run.steps`; loading it gives
the path of its definition file (a str or Path, or a callable returning one).
This module reads the YAML; runner.catalog judges what it holds.
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from pathlib import Path

from runner.catalog.definition import step_type_from
from runner.catalog.registry import Registry
from runner.catalog.step_type import StepType
from runner.dsl.loader import load_file
from runner.errors import DefinitionError
from runner.resources import data_dir

ENTRY_POINT_GROUP = "qlrf_run.steps"


def load_definition(path: Path) -> StepType:
    """Read and check one definition file; DefinitionError names the file and line."""
    doc = load_file(path)
    if doc.diagnostics:
        raise DefinitionError("\n".join(d.text() for d in doc.diagnostics))
    return step_type_from(doc.data, os.fspath(path), doc.at)


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
