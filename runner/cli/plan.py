"""`qlrf-run plan FILE`: the compiled graph with effective retries and timeouts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from runner.cli.common import PlanFormat, err, examples, exit_with, out


def plan(
    file: Path = typer.Argument(..., help="Runbook file", show_default=False),
    input: list[str] = typer.Option([], "--input", "-i", help="NAME=VALUE (@path reads a file)"),
    inputs_file: Path | None = typer.Option(None, "--inputs-file", help="YAML or JSON inputs"),
    format: PlanFormat = typer.Option(PlanFormat.text, "--format", "-f", help="Output format"),
) -> None:
    """Compile a runbook and show its plan: layers, needs, effective retry and timeouts."""
    from runner.cli.render_plan import render_mermaid, render_text
    from runner.dsl.diagnostics import render_text as render_diagnostics
    from runner.pipeline import InvalidRunbook, compile_file

    try:
        compiled = compile_file(file, input, inputs_file, require_inputs=False)
    except InvalidRunbook as exc:
        err(render_diagnostics([(exc.file, exc.diagnostics)]))
        exit_with(1)
    for warning in compiled.warnings:
        err(warning.text())
    for name in compiled.missing_required:
        err(f"note: input '{name}' is required; apply will need --input {name}=VALUE")
    if format is PlanFormat.json:
        out(json.dumps(compiled.plan.to_dict(), indent=2, sort_keys=True, ensure_ascii=False))
    elif format is PlanFormat.mermaid:
        out(render_mermaid(compiled.plan))
    else:
        out(render_text(compiled.plan, compiled.inputs, compiled.missing_required))


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run plan drill.yaml",
            "qlrf-run plan patch.yaml -i hosts=@hosts.json --format json",
            "qlrf-run plan drill.yaml --format mermaid > drill.mmd",
        )
    )(plan)
