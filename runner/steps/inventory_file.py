"""Reading an inventory file (`foreach: {from_file: PATH, format: ...}`) into items.

Formats:
- `lines`: one item per line, as text; blank lines and lines starting with `#` are
  left out. A line with a control character is refused, with its number.
- `json`: a JSON array, or JSON Lines (one JSON value per line; blank lines left out).
- `yaml`: a YAML document that is a list.

Every item must stay small (ITEM_BYTES as compact JSON): a batch of 1,000 items
travels in one payload. A file over its limits, in bytes or items, is refused with
the variable that raises the limit.

The path comes from a run's inputs, which anyone allowed to start a run chooses, so
it is confined: it must resolve, after its links, inside a directory the worker
names in QLRF_INVENTORY_DIRS, and never to one of qlrf-run's own files (its secrets,
keys and trust file, runner/steps/own_files.py). A YAML file is read with the
budgets of the runbook loader (aliases counted as expanded, nesting bounded), and no
format lets a control character or a bidirectional override through: items are
shown in terminals, pages and logs.
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
from runner.steps.own_files import is_own, own_files

FORMATS = ("lines", "json", "yaml")
DIRS_VARIABLE = "QLRF_INVENTORY_DIRS"
# The runbook loader's budgets (runner/dsl/loader.py): nesting, and nodes per item once
# aliases are expanded.
MAX_DEPTH = 64
NODES_PER_ITEM = 64
ITEM_BYTES = 1024
DEFAULT_MAX_ITEMS = 1_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
MAX_ITEMS_VARIABLE = "QLRF_MAX_INVENTORY_ITEMS"
MAX_BYTES_VARIABLE = "QLRF_MAX_INVENTORY_BYTES"
# C0 and C1 controls (a tab aside) and the bidirectional marks and overrides, which
# make a terminal, a page or a log show something else than what is there.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


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
    allowed = allowed_dirs()
    # Before the open as well as after it: opening a path outside them (a device, a
    # FIFO) is itself an act, and whether it exists is nobody's business.
    _confined(full, os.path.realpath(full), allowed)
    try:
        data = read_bytes(
            full, "inventory file", max_bytes, lambda real: _confined(full, real, allowed)
        )
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


def allowed_dirs() -> list[str]:
    """The real paths of QLRF_INVENTORY_DIRS (separated as PATH is)."""
    raw = os.environ.get(DIRS_VARIABLE, "")
    return [os.path.realpath(d.strip()) for d in raw.split(os.pathsep) if d.strip()]


def _confined(given: str, real: str, allowed: list[str]) -> None:
    """Refuse an opened inventory file outside the allowed directories, or one of
    qlrf-run's own files. `real` is the path of what was opened, links resolved."""
    if not allowed:
        raise InventoryError(
            "InventoryNotAllowed",
            f"inventory file {given}: this worker reads inventories only from the "
            f"directories named in {DIRS_VARIABLE}, and it names none; set "
            f"{DIRS_VARIABLE}=/srv/inventories (several separated by '{os.pathsep}') on "
            "the worker",
        )
    if not any(real == d or real.startswith(d.rstrip("/") + "/") for d in allowed):
        raise InventoryError(
            "InventoryNotAllowed",
            f"inventory file {given} is outside the directories this worker reads "
            f"inventories from ({DIRS_VARIABLE}: {os.pathsep.join(allowed)}); move it "
            "into one of them",
        )
    if is_own(real, own_files()):
        raise InventoryError(
            "InventoryNotAllowed",
            f"inventory file {given} is one of qlrf-run's own files (a secret, key, "
            "trust file or state), which are never read as an inventory",
        )


def _printable(full: str, where: str, item: Any) -> None:
    """Refuse a control character anywhere in an item: in its text, or its keys."""
    stack = [item]
    while stack:
        value = stack.pop()
        texts: list[str] = []
        if isinstance(value, str):
            texts = [value]
        elif isinstance(value, dict):
            texts = [k for k in value if isinstance(k, str)]
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        for text in texts:
            bad = _CONTROL.search(text)
            if bad:
                raise InventoryError(
                    "InventoryInvalid",
                    f"inventory file {full} {where}: control character "
                    f"{bad.group()!r}; items are names and facts, shown to people as text",
                )


def _checked(full: str, line: int | None, item: Any, index: int) -> Any:
    where = f"line {line}" if line else f"item {index + 1}"
    _printable(full, where, item)
    size = len(json.dumps(item, separators=(",", ":"), default=str))
    if size > ITEM_BYTES:
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


def _budget(full: str, text: str, loader: Any) -> None:
    """Walk the YAML's events before anything is built: nesting at most MAX_DEPTH, each
    item at most ITEM_BYTES nodes and the file NODES_PER_ITEM nodes an item of the
    largest inventory allowed, aliases counted as expanded, so that a few bytes of
    anchors cannot grow into gigabytes."""
    budget = NODES_PER_ITEM * limit(MAX_ITEMS_VARIABLE, DEFAULT_MAX_ITEMS)
    sizes: dict[str, int] = {}  # an anchor's nodes, once expanded
    open_: list[list[Any]] = []  # [anchor, nodes so far] of each open collection
    total = items = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise _too(full, event, f"nesting deeper than {MAX_DEPTH} levels")
            open_.append([event.anchor, 1])
            total += 1
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes = open_.pop()
            if anchor:
                sizes[anchor] = nodes
            total -= 1  # counted at its start, and again as a whole below
        elif isinstance(event, yaml.AliasEvent):
            nodes = sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            nodes = 1
            if event.anchor:
                sizes[event.anchor] = 1
        else:
            continue
        if not open_:
            continue  # the document's own top node
        open_[-1][1] += nodes
        if isinstance(event, yaml.CollectionEndEvent):
            total += 1
        else:
            total += nodes
        if len(open_) == 1:
            items += 1
            if nodes > ITEM_BYTES:  # an item of ITEM_BYTES of JSON has fewer nodes
                raise _too(full, event, f"item {items} expands to {nodes:,} nodes")
        if total > budget:
            raise _too(full, event, f"more than {budget:,} nodes once its aliases are expanded")


def _too(full: str, event: Any, what: str) -> InventoryError:
    mark = event.start_mark
    where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
    return InventoryError(
        "InventoryTooLarge", f"inventory file {full}{where}: {what}; give plain items"
    )


def _yaml(full: str, text: str) -> list[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _budget(full, text, loader)
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
