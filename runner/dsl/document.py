"""A loaded runbook: plain JSON-compatible data plus the source position of every node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.dsl.diagnostics import Diagnostic, Path, path_str


@dataclass(slots=True)
class Pos:
    """Where a node starts (1-based), and the positions of its children.

    Aliases share Pos objects with their anchor, so expanding an alias costs nothing.
    """

    line: int
    column: int
    children: dict[Any, Pos] | list[Pos] | None = None
    keys: dict[str, tuple[int, int]] | None = None  # mapping key -> where the key is written


@dataclass
class Document:
    file: str
    data: Any
    root: Pos
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def _walk(self, path: Path) -> tuple[Pos, int]:
        """The deepest Pos along `path`, and how many parts of the path it covers."""
        pos, depth = self.root, 0
        for part in path:
            children = pos.children
            try:
                nxt = children[part] if children is not None else None  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                nxt = None
            if nxt is None:
                break
            pos, depth = nxt, depth + 1
        return pos, depth

    def at(self, path: Path) -> tuple[int, int]:
        """Position of the node at `path`, or of its nearest ancestor that exists."""
        pos, _ = self._walk(path)
        return pos.line, pos.column

    def key_at(self, path: Path) -> tuple[int, int]:
        """Position of the key that names the node at `path` (falls back to `at`)."""
        if path:
            parent, depth = self._walk(path[:-1])
            if depth == len(path) - 1 and parent.keys and path[-1] in parent.keys:
                return parent.keys[path[-1]]
        return self.at(path)

    def diag(
        self,
        path: Path,
        code: str,
        message: str,
        *,
        severity: str = "error",
        on_key: bool = False,
    ) -> Diagnostic:
        line, column = self.key_at(path) if on_key else self.at(path)
        return Diagnostic(self.file, line, column, severity, code, path_str(path), message)
