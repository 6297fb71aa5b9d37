"""Checks that templated values cannot become shell code (docs/isolation.md).

A script's `{{ }}` reaches bash as an environment variable, so quotes and `$(...)`
in a value stay text wherever bash only expands it. Where bash evaluates a variable's
content, as arithmetic, as code or as a variable's name, a value such as
`a[$(touch /tmp/x)]` runs a command. runner/dsl/checks/bash.py finds every such
place with a bash parser, following each value through the variables it is
assigned to; each is an error:

- `shell-arith-template`: arithmetic;
- `shell-eval-template`: code (eval, source, trap, a shell's -c, a pipe into a
  shell, the command's own place, ...);
- `shell-name-template`: a variable's name (read, printf -v, declare, [[ -v ]], ...);
- `shell-c-template`: a template in `command: [bash, -c, "..."]`, or any argv word
  a program runs as code (`python -c`, `su -c`, ssh's remote command), past
  wrappers such as env, sudo or timeout. Use `script:`.

A value that can only be a number passes: a declared integer or number input, or
an expression ending in `| int`. A script bash's grammar cannot read gets a warning
(`shell-syntax`): what is past the error could not be checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from runner import templates
from runner.catalog.registry import Registry
from runner.dsl.checks import bash
from runner.dsl.diagnostics import Diagnostic, Path
from runner.dsl.document import Document
from runner.dsl.model import RunbookView

_INT_FILTER = re.compile(r"\|\s*int\s*(?:\([^)]*\))?\s*$")
_INPUT = re.compile(r"^\s*inputs\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
_ADVICE = {
    bash.ARITH: (
        "where bash evaluates it as code (a value like a[$(cmd)] would run cmd); compare it "
        "as text, or make it a number: an integer input or `| int`"
    ),
    bash.EVAL: (
        "where bash runs the value as code; hand it over as data (a quoted argument, or a "
        "file), or make it a number: an integer input or `| int`"
    ),
    bash.NAME: (
        "where the value names a variable, and bash evaluates a name's subscript (a value "
        "like a[$(cmd)] would run cmd); use a fixed name"
    ),
}


def numeric(expr: str, inputs: dict[str, Any]) -> bool:
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
    exprs = [expr for _, _, expr in templates.expressions(script)]
    if not exprs:
        return
    found, spans = bash.findings(script, [numeric(expr, inputs) for expr in exprs])
    for finding in sorted(found, key=lambda f: (f.offset, f.code)):
        line = bash.line_of(script, spans, finding.offset)
        via = f" (through ${finding.via})" if finding.via else ""
        verb = "sits in" if finding.code == bash.ARITH else "reaches"
        yield doc.diag(
            path,
            finding.code,
            f"script line {line}: {{{{{exprs[finding.arg]}}}}}{via} {verb} {finding.what}, "
            + _ADVICE[finding.code],
        )
    broken = bash.has_syntax_error(script)
    if broken is not None:
        yield doc.diag(
            path,
            "shell-syntax",
            f"script line {broken}: bash's grammar cannot read the script here, so its "
            "templates could not all be checked; fix the script",
            severity="warning",
        )


def _command_problems(doc: Document, path: Path, argv: list[Any]) -> Iterator[Diagnostic]:
    words = [a if isinstance(a, str) else "" for a in argv]
    for index, what in bash.argv_code(words):
        if "{{" in words[index]:
            yield doc.diag(
                (*path, index),
                "shell-c-template",
                f"{what} runs this text as code, and a template in it becomes code too; use "
                "`script:`, which passes each {{ }} as an environment variable",
            )


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
