"""Reading an inventory file (`foreach: {from_file: PATH, format: ...}`) into items.

Formats:
- `lines`: one item per line, as text; blank lines and lines starting with `#` are
  left out. A line with a control character is refused, with its number.
- `json`: a JSON array, or JSON Lines (one JSON value per line; blank lines left out).
- `yaml`: a YAML document that is a list.

Every item must stay small (ITEM_BYTES as compact JSON): a batch of 1,000 items
travels in one payload. A file over its limits, in bytes or items, is refused with
the variable that raises the limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from runner.files import FileRefused, read_bytes

FORMATS = ("lines", "json", "yaml")
ITEM_BYTES = 1024
DEFAULT_MAX_ITEMS = 1_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
MAX_ITEMS_VARIABLE = "QLRF_MAX_INVENTORY_ITEMS"
MAX_BYTES_VARIABLE = "QLRF_MAX_INVENTORY_BYTES"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class InventoryError(Exception):
    """The file cannot be used as an inventory; `kind` is the step's error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Inventory:
    path: str
    sha256: str
    items: list[Any]


def limit(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise InventoryError(
            "InventoryConfig", f"{variable}={raw!r} is not a whole number; set it to one"
        ) from None
    if value < 1:
        raise InventoryError("InventoryConfig", f"{variable} must be at least 1, not {value}")
    return value


def load(path: str, fmt: str) -> Inventory:
    """The items of the inventory file at `path`, read and checked."""
    if fmt not in FORMATS:
        raise InventoryError(
            "InventoryInvalid", f"format {fmt!r} is not one of {', '.join(FORMATS)}"
        )
    full = os.path.abspath(path)
    max_bytes = limit(MAX_BYTES_VARIABLE, DEFAULT_MAX_BYTES)
    try:
        data = read_bytes(full, "inventory file", max_bytes)
    except FileRefused as exc:
        text = str(exc)
        kind = "InventoryTooLarge" if "limit" in text else "InventoryNotFound"
        hint = f"; raise {MAX_BYTES_VARIABLE} on the worker" if kind == "InventoryTooLarge" else ""
        if kind == "InventoryNotFound" and os.path.exists(full):
            kind = "InventoryUnreadable"
        elif kind == "InventoryNotFound":
            hint = " (the path is read on the worker; a relative one from its working directory)"
        raise InventoryError(kind, text + hint) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InventoryError(
            "InventoryInvalid", f"inventory file {full} line {line}: not UTF-8 text"
        ) from None
    items = _PARSERS[fmt](full, text)
    max_items = limit(MAX_ITEMS_VARIABLE, DEFAULT_MAX_ITEMS)
    if len(items) > max_items:
        raise InventoryError(
            "InventoryTooLarge",
            f"inventory file {full} has {len(items):,} items, over the limit of "
            f"{max_items:,}; split it, or raise {MAX_ITEMS_VARIABLE} on the worker",
        )
    return Inventory(full, hashlib.sha256(data).hexdigest(), items)


def _checked(full: str, line: int | None, item: Any, index: int) -> Any:
    size = len(json.dumps(item, separators=(",", ":"), default=str))
    if size > ITEM_BYTES:
        where = f"line {line}" if line else f"item {index + 1}"
        raise InventoryError(
            "InventoryInvalid",
            f"inventory file {full} {where}: the item is {size:,} bytes, over the "
            f"{ITEM_BYTES:,}-byte limit of an inventory item; keep items to a host's "
            "facts, and look up the rest in the step",
        )
    return item


def _lines(full: str, text: str) -> list[Any]:
    items: list[Any] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").strip()
        if not line or line.startswith("#"):
            continue
        bad = _CONTROL.search(line)
        if bad:
            raise InventoryError(
                "InventoryInvalid",
                f"inventory file {full} line {number}: control character "
                f"{bad.group()!r} at column {bad.start() + 1}; one item per line, as text",
            )
        items.append(_checked(full, number, line, len(items)))
    return items


def _json(full: str, text: str) -> list[Any]:
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InventoryError(
                "InventoryInvalid",
                f"inventory file {full} line {exc.lineno} column {exc.colno}: {exc.msg}; "
                "give a JSON array, or one JSON value per line",
            ) from None
        line_of = _item_lines(text, len(value))
        return [_checked(full, line_of(i), item, i) for i, item in enumerate(value)]
    items: list[Any] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            items.append(_checked(full, number, json.loads(line), len(items)))
        except json.JSONDecodeError as exc:
            raise InventoryError(
                "InventoryInvalid",
                f"inventory file {full} line {number} column {exc.colno}: {exc.msg}; "
                "each line must be one JSON value",
            ) from None
    return items


def _item_lines(text: str, count: int) -> Any:
    """For an array: an item's line, when the array has one item per line (else None)."""
    if text.count("\n") >= count + 1:
        return lambda i: i + 2
    return lambda i: None


def _yaml(full: str, text: str) -> list[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        value = yaml.load(text, Loader=loader)  # a safe loader: no objects built
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InventoryError(
            "InventoryInvalid", f"inventory file {full}{where}: {problem}"
        ) from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(
            "InventoryInvalid",
            f"inventory file {full}: a YAML {type(value).__name__}, not a list; give a "
            "list of items (- web-1, or - {{name: web-1, address: ...}})",
        )
    try:
        return [
            _checked(full, None, json.loads(json.dumps(item)), i) for i, item in enumerate(value)
        ]
    except (TypeError, ValueError):
        raise InventoryError(
            "InventoryInvalid",
            f"inventory file {full}: an item holds a value JSON cannot carry (a date or "
            "binary); quote it",
        ) from None


_PARSERS = {"lines": _lines, "json": _json, "yaml": _yaml}
