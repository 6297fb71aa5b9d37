"""Checks that templated values cannot become shell code.

A script's `{{ }}` reaches bash as an environment variable, so quotes and `$(...)`
in a value stay text. Two places are still code, and both are refused:

- `shell-arith-template`: bash evaluates arithmetic operands as expressions, and
  an expression such as `a[$(touch /tmp/x)]` runs the command. So no template may
  sit in `$(( ))`, `(( ))`, `$[ ]`, `let`, `declare -i`, an arithmetic comparison
  of `[[ ]]` (-eq -ne -lt -le -gt -ge), an array subscript or a substring offset,
  unless its value is a number: a declared integer or number input, or an
  expression ending in `| int`.
- `shell-c-template`: `command: [bash, -c, "...{{ }}..."]` splices the value
  into code. Use `script:`, which passes values as environment variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from runner import templates
from runner.catalog.registry import Registry
from runner.dsl.diagnostics import Diagnostic, Path
from runner.dsl.document import Document
from runner.dsl.model import RunbookView

SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish"}
_ARITH_OPERATORS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
_COMMAND_START = re.compile(r"(?:^|[;&|({}\n!]|\b(?:do|then|else|elif|if|while|until|time))\s*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT_FILTER = re.compile(r"\|\s*int\s*(?:\([^)]*\))?\s*$")
_INPUT = re.compile(r"^\s*inputs\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _quoted_spans(script: str) -> list[tuple[int, int]]:
    """Spans inside single quotes, where nothing is expanded (outside double quotes)."""
    spans: list[tuple[int, int]] = []
    in_double = False
    i = 0
    while i < len(script):
        ch = script[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_double = not in_double
        elif ch == "'" and not in_double:
            end = script.find("'", i + 1)
            if end < 0:
                break
            spans.append((i, end + 1))
            i = end + 1
            continue
        i += 1
    return spans


def _matching(script: str, start: int, opening: str, closing: str) -> int:
    """The index just past the `closing` that balances the `opening` at `start`."""
    depth = 0
    i = start
    while i < len(script):
        if script.startswith(opening, i):
            depth += 1
            i += len(opening)
            continue
        if script.startswith(closing, i):
            depth -= 1
            i += len(closing)
            if depth == 0:
                return i
            continue
        i += 1
    return len(script)


def _command_end(script: str, start: int) -> int:
    ends = [script.find(c, start) for c in ("\n", ";", "&", "|", ")")]
    found = [e for e in ends if e >= 0]
    return min(found) if found else len(script)


def _at_command_start(script: str, index: int) -> bool:
    return bool(_COMMAND_START.search(script[max(0, index - 40) : index]))


def arithmetic_spans(script: str) -> list[tuple[int, int, str]]:
    """The parts of a bash script that bash evaluates as arithmetic: (start, end, what)."""
    quoted = bytearray(len(script))
    for a, b in _quoted_spans(script):
        quoted[a:b] = b"\x01" * (b - a)

    def literal(i: int) -> bool:
        return bool(quoted[i])

    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(script):
        if literal(i):
            i += 1
            continue
        rest = script[i:]
        if rest.startswith("$(("):
            end = _matching(script, i + 1, "(", ")")
            spans.append((i, end, "$(( ))"))
            i = end
            continue
        if rest.startswith("((") and (i == 0 or script[i - 1] != "$"):
            end = _matching(script, i, "(", ")")
            spans.append((i, end, "(( ))"))
            i = end
            continue
        if rest.startswith("$["):
            end = _matching(script, i + 1, "[", "]")
            spans.append((i, end, "$[ ]"))
            i = end
            continue
        if rest.startswith("[[") and _at_command_start(script, i):
            end = _matching(script, i, "[[", "]]")
            spans.extend(_arith_comparisons(script, i + 2, end - 2))
            i = end
            continue
        word = _NAME.match(script, i)
        if word and (i == 0 or not (script[i - 1].isalnum() or script[i - 1] in "_$-")):
            name = word.group()
            after = word.end()
            if name == "let" and _at_command_start(script, i):
                end = _command_end(script, after)
                spans.append((after, end, "let"))
                i = end
                continue
            if name in ("declare", "typeset", "local") and _at_command_start(script, i):
                end = _command_end(script, after)
                options = re.findall(r"(?:^|\s)-([A-Za-z]+)", script[after:end])
                if any("i" in o for o in options):
                    spans.append((after, end, f"{name} -i"))
                i = end
                continue
            if script.startswith("[", after) and _at_command_start(script, i):
                end = _matching(script, after, "[", "]")
                spans.append((after, end, "an array subscript"))
                i = end
                continue
            i = after
            continue
        if rest.startswith("${"):
            variable = _NAME.match(script, i + 2)
            if variable:
                after = variable.end()
                if script.startswith("[", after):
                    end = _matching(script, after, "[", "]")
                    spans.append((after, end, "an array subscript"))
                elif script.startswith(":", after) and not script.startswith(
                    (":-", ":=", ":?", ":+"), after
                ):
                    end = _matching(script, i + 1, "{", "}")
                    spans.append((after, end, "a substring offset"))
        i += 1
    return spans


def _arith_comparisons(script: str, start: int, end: int) -> Iterator[tuple[int, int, str]]:
    """The primaries of `[[ ]]` that compare numbers (their operands are arithmetic)."""
    body = script[start:end]
    at = start
    for part in re.split(r"(&&|\|\|)", body):
        if part not in ("&&", "||") and set(part.split()) & _ARITH_OPERATORS:
            yield (at, at + len(part), "an arithmetic comparison in [[ ]]")
        at += len(part)


def _numeric(expr: str, inputs: dict[str, Any]) -> bool:
    """The template's value can only be a number."""
    if _INT_FILTER.search(expr):
        return True
    match = _INPUT.match(expr)
    if match:
        decl = inputs.get(match.group(1))
        return isinstance(decl, dict) and decl.get("type") in ("integer", "number")
    return False


def _script_problems(
    doc: Document, path: Path, script: str, inputs: dict[str, Any]
) -> Iterator[Diagnostic]:
    spans = arithmetic_spans(script)
    if not spans:
        return
    for start, end, expr in templates.expressions(script):
        for a, b, what in spans:
            if a < end and start < b and not _numeric(expr, inputs):
                line = script.count("\n", 0, start) + 1
                yield doc.diag(
                    path,
                    "shell-arith-template",
                    f"script line {line}: {{{{{expr}}}}} sits in {what}, where bash evaluates "
                    "it as code (a value like a[$(cmd)] would run cmd); compare it as text, "
                    "or make it a number: an integer input or `| int`",
                )
                break


def _command_problems(doc: Document, path: Path, argv: list[Any]) -> Iterator[Diagnostic]:
    words = [a if isinstance(a, str) else "" for a in argv]
    for i, word in enumerate(words):
        if word.rsplit("/", 1)[-1] not in SHELLS:
            continue
        for j in range(i + 1, len(words)):
            flag = words[j]
            if flag.startswith("-") and not flag.startswith("--") and "c" in flag[1:]:
                if j + 1 < len(words) and "{{" in words[j + 1]:
                    yield doc.diag(
                        (*path, j + 1),
                        "shell-c-template",
                        f"`{words[i]} {flag}` runs this text as shell code, and a template in "
                        "it becomes code too; use `script:`, which passes each {{ }} as an "
                        "environment variable",
                    )
                break
            if not flag.startswith("-"):
                break
        break


def detect_shell_injection(
    doc: Document, view: RunbookView, registry: Registry
) -> Iterator[Diagnostic]:
    inputs = view.inputs
    for step in view.steps:
        blocks: list[tuple[Path, Any]] = [((*step.path, "with"), step.data)]
        comp = step.data.get("compensate")
        if isinstance(comp, dict):
            blocks.append(((*step.path, "compensate", "with"), comp))
        for where, block in blocks:
            step_type = registry.find(block.get("type"))
            params = block.get("with")
            if step_type is None or not isinstance(params, dict):
                continue
            script_key = step_type.capabilities.script
            if script_key and isinstance(params.get(script_key), str):
                yield from _script_problems(doc, (*where, script_key), params[script_key], inputs)
            argv_key = step_type.capabilities.argv
            if argv_key and isinstance(params.get(argv_key), list):
                yield from _command_problems(doc, (*where, argv_key), params[argv_key])
