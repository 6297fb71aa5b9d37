"""Run inputs: checking values against their declarations, and reading them from the CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner import durations
from runner.contract.messages import NUL as NUL
from runner.contract.messages import Inputs
from runner.contract.messages import nul_at as nul_at
from runner.errors import InputError
from runner.files import FileRefused, read_text
from runner.suggest import hint

_PY_CHECK = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "duration": durations.is_duration,
}
_NAMES = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "duration": "a duration such as 30s, 10m or 1h30m",
}


def value_problem(decl: Mapping[str, Any], value: Any) -> str | None:
    """Why `value` does not fit the input declaration `decl`, or None when it does."""
    nul = nul_at(value)
    if nul is not None:
        return f"{nul} holds a NUL character (\\0), which no command or record can carry"
    kind = decl.get("type")
    if not isinstance(kind, str) or kind not in _PY_CHECK:
        return None  # an unknown type is reported by the schema check
    check = _PY_CHECK[kind]
    if not check(value):
        return f"expected {_NAMES[kind]}, got {json.dumps(value)[:60]}"
    items = decl.get("items")
    if kind == "array" and isinstance(items, Mapping):
        item_type = items.get("type")
        item_check = _PY_CHECK.get(item_type) if isinstance(item_type, str) else None
        if item_check is not None and isinstance(item_type, str):
            for i, item in enumerate(value):
                if not item_check(item):
                    return f"item {i} should be {_NAMES[item_type]}, got {json.dumps(item)[:60]}"
    enum = decl.get("enum")
    if isinstance(enum, list) and value not in enum:
        shown = ", ".join(json.dumps(e) for e in enum)
        return f"{json.dumps(value)[:60]} is not one of: {shown}" + hint(
            str(value), [str(e) for e in enum]
        )
    return None


def convert(
    name: str, decl: Mapping[str, Any], text: str, flag: str = "--input", *, files: bool = True
) -> Any:
    """Turn the text of `--input name=text` into a value of the declared type; `flag`
    is how the person gave it (`--set` for a modify), for the messages. `@PATH` reads
    a file only with `files` (the CLI's own user); a value from a web form is text."""
    if files and text.startswith("@"):
        path = Path(text[1:])
        try:
            text = read_text(path)
        except FileRefused as exc:
            raise InputError(
                f"{flag} {name}=@{path}: cannot read the file ({exc}); check the path"
            ) from None
        if decl.get("type") in ("string", "duration"):
            text = text.rstrip("\n")
    kind = decl.get("type")
    try:
        if kind in ("string", "duration"):
            return text
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean":
            lowered = text.lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError(text)
        return json.loads(text)
    except (ValueError, json.JSONDecodeError):
        example = {
            "integer": "5",
            "number": "2.5",
            "boolean": "true",
            "array": '["a","b"]',
            "object": '{"k": "v"}',
        }.get(str(kind), "text")
        raise InputError(
            f"{flag} {name}={text[:60]!r} is not {_NAMES.get(str(kind), kind)}; "
            f"e.g. {flag} {name}={example}"
        ) from None


def parse_assignments(
    pairs: list[str], declared: Mapping[str, Any], flag: str = "--input", *, files: bool = True
) -> Inputs:
    """`["k=v", ...]` -> {k: value} converted by the declared types."""
    out: Inputs = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise InputError(f"{flag} {pair!r}: write it as NAME=VALUE")
        decl = declared.get(name)
        if not isinstance(decl, Mapping):
            raise InputError(
                f"{flag} {name}: the runbook declares no input '{name}'"
                f"{hint(name, declared)}; declared: {', '.join(declared) or 'none'}"
            )
        value = convert(name, decl, text, flag, files=files)
        if nul_at(value) is not None:
            raise InputError(
                f"{flag} {name}: the value holds a NUL character (\\0), which no command "
                "or record can carry; remove it"
            )
        out[name] = value
    return out


def resolve(declared: Mapping[str, Any], given: Mapping[str, Any]) -> Inputs:
    """Defaults filled in, every value checked; InputError lists every problem at once."""
    problems = []
    values: Inputs = {}
    for name in given:
        if name not in declared:
            problems.append(f"'{name}' is not an input of this runbook{hint(name, declared)}")
    for name, decl in declared.items():
        if name in given:
            value = given[name]
        elif "default" in decl:
            value = decl["default"]
        else:
            if decl.get("required"):
                problems.append(f"input '{name}' is required; pass --input {name}=VALUE")
            else:
                values[name] = None  # optional without a default: templates see none
            continue
        problem = value_problem(decl, value)
        if problem:
            problems.append(f"input '{name}': {problem}")
        values[name] = value
    if problems:
        raise InputError("; ".join(problems))
    return values
