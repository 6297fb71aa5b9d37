"""Diagnostics: every problem found in a runbook, with where it is and what to do."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

Path = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def path_str(path: Path) -> str:
    """`("steps", 2, "needs", 0)` -> `steps[2].needs[0]`; the document itself is `$`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "$"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding. Field order is the sort order: by file, then position."""

    file: str
    line: int
    column: int
    severity: str  # "error" | "warning"
    code: str
    path: str
    message: str

    def text(self) -> str:
        return (
            f"{self.file}:{self.line}:{self.column}: "
            f"{self.severity}[{self.code}] {self.path}: {self.message}"
        )

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("file")
        return d


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def render_text(results: Sequence[tuple[str, list[Diagnostic]]]) -> str:
    lines = [d.text() for _, diags in results for d in sorted(diags)]
    errors = sum(1 for _, diags in results for d in diags if d.severity == "error")
    warnings = sum(1 for _, diags in results for d in diags if d.severity == "warning")
    bad = sum(1 for _, diags in results if has_errors(diags))
    if errors or warnings:
        lines.append(
            f"{errors} error(s), {warnings} warning(s) in {len(results)} file(s); {bad} invalid"
        )
    else:
        lines.append(f"{len(results)} file(s) valid")
    return "\n".join(lines)


def render_json(results: Sequence[tuple[str, list[Diagnostic]]]) -> str:
    files = [
        {
            "file": file,
            "valid": not has_errors(diags),
            "diagnostics": [d.as_json() for d in sorted(diags)],
        }
        for file, diags in results
    ]
    return json.dumps({"files": files}, indent=2)


def escape_github(text: str, *, prop: bool = False) -> str:
    # GitHub Actions workflow-command escaping; properties also escape ':' and ','.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render_github(results: Sequence[tuple[str, list[Diagnostic]]]) -> str:
    lines = []
    for _, diags in results:
        for d in sorted(diags):
            level = "error" if d.severity == "error" else "warning"
            lines.append(
                f"::{level} file={escape_github(d.file, prop=True)},line={d.line},"
                f"col={d.column},title={escape_github(d.code, prop=True)}::"
                f"{escape_github(f'{d.path}: {d.message}')}"
            )
    return "\n".join(lines)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}
