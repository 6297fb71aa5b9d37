"""Load a runbook file into a `Document`, keeping the line and column of every node.

The event stream of PyYAML's parser is consumed here directly, without its
recursive composer, so that hostile input is refused before it costs anything:
- files over MAX_BYTES are refused from their size alone;
- nesting deeper than MAX_DEPTH is refused at the node that crosses it;
- alias expansion is counted as it is seen, and refused past MAX_NODES
  (a "billion laughs" document never gets expanded);
- duplicate mapping keys are errors (PyYAML would silently keep the last one).
Scalars are resolved with the YAML 1.2 core schema, as editors do: `yes`, `no`,
`on` and `off` stay strings, and timestamps stay strings, so the data is JSON.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
from yaml import events

from runner.dsl.diagnostics import Diagnostic, path_str
from runner.dsl.document import Document, Pos
from runner.files import FileRefused, read_bytes

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 1_000_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(inf|Inf|INF)$")
_NAN = re.compile(r"^\.(nan|NaN|NAN)$")

_STR_TAG = "tag:yaml.org,2002:str"
_KNOWN_TAGS = {
    _STR_TAG,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class _Refused(Exception):
    def __init__(self, mark: Any, code: str, message: str) -> None:
        super().__init__(message)
        self.line = (mark.line + 1) if mark is not None else 1
        self.column = (mark.column + 1) if mark is not None else 1
        self.code = code
        self.message = message


def _scalar(ev: events.ScalarEvent) -> Any:
    value = ev.value
    tag = ev.tag
    if tag not in (None, "!") and tag not in _KNOWN_TAGS:
        raise _Refused(
            ev.start_mark,
            "unknown-tag",
            f"unsupported YAML tag '{tag}'; remove the tag (runbooks hold plain data)",
        )
    if tag == _STR_TAG or tag == "!" or (tag is None and not ev.implicit[0]):
        return value  # quoted, block or explicitly tagged text
    if _NULL.match(value) and tag in (None, "tag:yaml.org,2002:null"):
        return None
    if value in _BOOL and tag in (None, "tag:yaml.org,2002:bool"):
        return _BOOL[value]
    if tag in (None, "tag:yaml.org,2002:int"):
        for pattern, base, skip in ((_INT10, 10, 0), (_INT8, 8, 2), (_INT16, 16, 2)):
            if pattern.match(value):
                return int(value[skip:], base)
    if tag in (None, "tag:yaml.org,2002:float", "tag:yaml.org,2002:int") and _FLOAT.match(value):
        return float(value)
    if _INF.match(value) or _NAN.match(value):
        raise _Refused(
            ev.start_mark,
            "bad-number",
            f"'{value}' is not a finite number; runbook values must be valid JSON numbers",
        )
    if tag is not None:
        raise _Refused(
            ev.start_mark, "bad-tag", f"'{value}' does not fit its tag '{tag}'; remove the tag"
        )
    return value


class _Frame:
    __slots__ = ("anchor", "data", "key", "key_mark", "merges", "path", "pos", "size")

    def __init__(self, data: Any, pos: Pos, anchor: str | None, path: tuple[Any, ...]) -> None:
        self.data = data
        self.path = path
        self.pos = pos
        self.anchor = anchor
        self.size = 1
        self.key: str | None = None  # mapping: the key waiting for its value
        self.key_mark: tuple[int, int] | None = None
        self.merges: list[tuple[Any, Pos]] = []


def _compose(stream: Any, file: str, diagnostics: list[Diagnostic]) -> tuple[Any, Pos] | None:
    """Build (data, positions) from the event stream, iteratively."""
    anchors: dict[str, tuple[Any, Pos, int]] = {}
    stack: list[_Frame] = []
    expanded = 0
    result: tuple[Any, Pos] | None = None
    documents = 0

    def attach(value: Any, pos: Pos, mark: Any, is_key_candidate: bool, text: str | None) -> None:
        nonlocal result
        if not stack:
            result = (value, pos)
            return
        top = stack[-1]
        if isinstance(top.data, list):
            top.data.append(value)
            top.pos.children.append(pos)  # type: ignore[union-attr]
            return
        if top.key is None:
            if not is_key_candidate:
                raise _Refused(
                    mark, "complex-key", "mapping keys must be plain text, not lists or mappings"
                )
            top.key = text
            top.key_mark = (pos.line, pos.column)
            return
        key = top.key
        top.key = None
        if key == "<<" and top.key_mark is not None:
            top.merges.append((value, pos))
            return
        assert top.pos.keys is not None and top.key_mark is not None
        if key in top.data:
            first = top.pos.keys[key]
            diagnostics.append(
                Diagnostic(
                    file,
                    top.key_mark[0],
                    top.key_mark[1],
                    "error",
                    "duplicate-key",
                    path_str((*top.path, key)),
                    f"key '{key}' is already set at line {first[0]}; "
                    "YAML keeps only one of them, so remove or rename the other",
                )
            )
            return
        top.data[key] = value
        top.pos.children[key] = pos  # type: ignore[call-overload,index]
        top.pos.keys[key] = top.key_mark

    def count(n: int, mark: Any) -> None:
        nonlocal expanded
        expanded += n
        if expanded > MAX_NODES:
            raise _Refused(
                mark,
                "too-large",
                f"the document expands to more than {MAX_NODES:,} nodes (through aliases or "
                "sheer size); split it into smaller runbooks",
            )
        if stack:
            stack[-1].size += n

    for ev in yaml.parse(stream, Loader=_Loader):
        if isinstance(ev, events.ScalarEvent):
            value = _scalar(ev)
            mark = ev.start_mark
            assert mark is not None  # the parser always sets marks
            pos = Pos(mark.line + 1, mark.column + 1)
            if ev.anchor:
                anchors[ev.anchor] = (value, pos, 1)
            count(1, mark)
            key_text = ev.value if isinstance(ev.value, str) else str(ev.value)
            attach(value, pos, mark, True, key_text)
        elif isinstance(ev, events.MappingStartEvent | events.SequenceStartEvent):
            if ev.tag not in (None, "!") and ev.tag not in _KNOWN_TAGS:
                raise _Refused(
                    ev.start_mark,
                    "unknown-tag",
                    f"unsupported YAML tag '{ev.tag}'; remove the tag (runbooks hold plain data)",
                )
            if len(stack) >= MAX_DEPTH:
                raise _Refused(
                    ev.start_mark,
                    "too-deep",
                    f"nesting deeper than {MAX_DEPTH} levels; flatten the structure",
                )
            mark = ev.start_mark
            assert mark is not None
            is_map = isinstance(ev, events.MappingStartEvent)
            pos = Pos(mark.line + 1, mark.column + 1, {} if is_map else [], {} if is_map else None)
            count(1, mark)
            stack.append(_Frame({} if is_map else [], pos, ev.anchor, _child_path(stack)))
        elif isinstance(ev, events.MappingEndEvent | events.SequenceEndEvent):
            frame = stack.pop()
            if frame.key is not None:  # cannot happen with a well-formed stream
                frame.key = None
            for source, source_pos in frame.merges:
                _merge(frame, source, source_pos, ev.start_mark)
            if frame.anchor:
                anchors[frame.anchor] = (frame.data, frame.pos, frame.size)
            if stack:
                stack[-1].size += frame.size
            attach(frame.data, frame.pos, ev.start_mark, False, None)
        elif isinstance(ev, events.AliasEvent):
            if ev.anchor not in anchors:
                raise _Refused(
                    ev.start_mark, "yaml-syntax", f"alias '*{ev.anchor}' names no anchor above it"
                )
            value, pos, size = anchors[ev.anchor]
            count(size, ev.start_mark)
            attach(value, pos, ev.start_mark, False, None)
        elif isinstance(ev, events.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Refused(
                    ev.start_mark,
                    "multiple-documents",
                    "a runbook file holds exactly one YAML document; "
                    "move the others into files of their own",
                )
    return result


def _child_path(stack: list[_Frame]) -> tuple[Any, ...]:
    """The path of a collection that starts now, for diagnostics found inside it."""
    if not stack:
        return ()
    top = stack[-1]
    if isinstance(top.data, list):
        return (*top.path, len(top.data))
    return (*top.path, top.key if top.key is not None else "?")


def _merge(frame: _Frame, source: Any, source_pos: Pos, mark: Any) -> None:
    """YAML merge keys (`<<: *defaults`): explicit keys win over merged ones."""
    sources = source if isinstance(source, list) else [source]
    positions = source_pos.children if isinstance(source, list) else [source_pos]
    for item, item_pos in zip(sources, positions or [], strict=False):
        if not isinstance(item, dict):
            raise _Refused(mark, "bad-merge", "'<<' must name a mapping (or a list of them)")
        for key, value in item.items():
            if key not in frame.data:
                frame.data[key] = value
                frame.pos.children[key] = item_pos.children[key]  # type: ignore[index]
                frame.pos.keys[key] = item_pos.keys[key]  # type: ignore[index]


def _problem_mark(exc: yaml.MarkedYAMLError) -> Any:
    return exc.problem_mark or exc.context_mark


def _char_at(text: str, mark: Any) -> str:
    if mark is None:
        return ""
    lines = text.splitlines()
    if mark.line >= len(lines) or mark.column >= len(lines[mark.line]):
        return ""
    return str(lines[mark.line][mark.column])


# What an empty runbook file is told to start from.
START_RUNBOOK = "start from `qlrf-run init NAME`"


def load_text(text: str, file: str, *, start_from: str = START_RUNBOOK) -> Document:
    """Load YAML text; problems are returned as diagnostics on the Document."""
    diagnostics: list[Diagnostic] = []
    empty = Document(file, None, Pos(1, 1), diagnostics)
    try:
        composed = _compose(text, file, diagnostics)
    except _Refused as exc:
        diagnostics.append(
            Diagnostic(file, exc.line, exc.column, "error", exc.code, "$", exc.message)
        )
        return empty
    except yaml.MarkedYAMLError as exc:
        mark = _problem_mark(exc)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "cannot start any token" in problem and _char_at(text, mark) == "\t":
            code, message = (
                "yaml-syntax",
                ("YAML does not allow tabs for indentation; indent with spaces"),
            )
        elif "nesting depth" in problem:
            code, message = "too-deep", f"nesting deeper than {MAX_DEPTH} levels; flatten it"
        else:
            code, message = "yaml-syntax", f"YAML syntax error: {problem}; fix the syntax here"
        diagnostics.append(Diagnostic(file, line, column, "error", code, "$", message))
        return empty
    except yaml.YAMLError as exc:
        diagnostics.append(
            Diagnostic(file, 1, 1, "error", "yaml-syntax", "$", f"YAML error: {exc}")
        )
        return empty
    if composed is None:
        diagnostics.append(
            Diagnostic(
                file,
                1,
                1,
                "error",
                "empty-file",
                "$",
                f"the file is empty; {start_from}",
            )
        )
        return empty
    data, root = composed
    return Document(file, data, root, diagnostics)


def _unloadable(file: str, code: str, message: str) -> Document:
    return Document(file, None, Pos(1, 1), [Diagnostic(file, 1, 1, "error", code, "$", message)])


def load_file(
    path: str | os.PathLike[str], display: str | None = None, *, start_from: str = START_RUNBOOK
) -> Document:
    """Load a runbook file: a regular file only, refused when too large before it is read."""
    return load_source(path, display, start_from=start_from)[0]


def load_source(
    path: str | os.PathLike[str], display: str | None = None, *, start_from: str = START_RUNBOOK
) -> tuple[Document, bytes]:
    """The loaded document and the exact bytes it was read from (read once)."""
    file = display or os.fspath(path)
    try:
        raw = read_bytes(path, "runbook", MAX_BYTES)
    except FileRefused as exc:
        if "limit" in str(exc):
            size = os.stat(path).st_size
            message = (
                f"the file is {size / 1048576:.1f} MiB, over the "
                f"{MAX_BYTES // 1048576} MiB limit for a runbook; split it"
            )
            return _unloadable(file, "too-large", message), b""
        return _unloadable(file, "unreadable", str(exc)), b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        return _unloadable(file, "encoding", message), raw
    if "\x00" in text:
        message = "the file holds NUL bytes; a runbook is UTF-8 text"
        return _unloadable(file, "encoding", message), raw
    return load_text(text, file, start_from=start_from), raw
