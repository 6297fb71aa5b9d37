"""`qlrf-run validate FILE...`: check runbooks; for pre-commit hooks and CI."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli.common import DiagFormat, examples, exit_with, out
from runner.errors import UsageError
from runner.pipeline import require_file


def validate(
    files: list[Path] = typer.Argument(
        ..., help="Runbook files, or folders of them", show_default=False
    ),
    format: DiagFormat = typer.Option(DiagFormat.text, "--format", "-f", help="Output format"),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors"),
) -> None:
    """Check runbooks (and test files) against the schema and every semantic rule.
    Exit 0 valid, 1 invalid."""
    from runner.dsl.diagnostics import RENDERERS, has_errors
    from runner.dsl.test_language import is_test_document
    from runner.dsl.validate import default_validator

    validator = default_validator()
    results = []
    for file in _expand(files):
        checked = validator.check_file(file)
        diagnostics = checked.diagnostics
        if checked.ok and is_test_document(checked.doc.data):
            # A test file: what it names is checked against its runbook too.
            from runner.testing.files import read_suite

            diagnostics = read_suite(checked.doc, checked.diagnostics, file)[1]
        results.append((str(file), diagnostics))
    text = RENDERERS[format.value](results)
    if text:
        out(text)
    failed = any(
        has_errors(d) or (strict and any(x.severity == "warning" for x in d)) for _, d in results
    )
    exit_with(1 if failed else 0)


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for every .yaml/.yml file below it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
            if not found:
                raise UsageError(f"{path} holds no .yaml or .yml files")
            files.extend(found)
        else:
            require_file(path)
            files.append(path)
    return files


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run validate runbooks/*.yaml",
            "qlrf-run validate drill.yaml --format json",
            "qlrf-run validate runbooks/*.yaml --format github   # annotations in CI",
        )
    )(validate)
