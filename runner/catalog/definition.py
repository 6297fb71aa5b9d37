"""A step-type definition: checked against the definition schema, turned into a StepType.

The file is read by the language front end (runner.dsl.definitions, which knows
YAML); this module judges the data, and names each problem by its file, line and
column through the `locate` callable it is given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jsonschema

from runner.catalog.step_type import Capabilities, StepType
from runner.catalog.vocabulary import step_type_schema
from runner.errors import DefinitionError

# (path inside the file) -> (line, column), 1-based.
Locate = Callable[[tuple[Any, ...]], tuple[int, int]]


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(step_type_schema())


def _path_text(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def step_type_from(data: Any, source: str, locate: Locate) -> StepType:
    """The StepType a definition declares; DefinitionError naming every problem."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = tuple(err.absolute_path)
            line, col = locate(where)
            lines.append(f"{source}:{line}:{col}: {_path_text(where)}: {err.message}")
        raise DefinitionError("invalid step-type definition:\n" + "\n".join(lines))
    capabilities = Capabilities.from_dict(data.get("capabilities") or {})
    if data["runs_in"] != "workflow" and capabilities.evaluator is not None:
        line, col = locate(("capabilities", "evaluator"))
        raise DefinitionError(
            f"{source}:{line}:{col}: an evaluator is only for runs_in: workflow; remove it"
        )
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
        capabilities=capabilities,
        source=source,
    )
