"""`qlrf-run schema`: print, write or check the published JSON Schemas."""

from __future__ import annotations

from pathlib import Path

import typer

from runner.cli.common import err, examples, exit_with, out
from runner.errors import UsageError


def schema(
    out_dir: Path | None = typer.Option(None, "--out", help="Write the schema files into DIR"),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when the files in DIR (default: schemas/) are stale"
    ),
) -> None:
    """Print the runbook JSON Schema, write both schema files (--out), or check them."""
    from runner.dsl.definitions import default_registry
    from runner.dsl.publish import RUNBOOK_SCHEMA, schema_files, stale_files
    from runner.resources import repo_root

    registry = default_registry()
    if check:
        directory = out_dir
        if directory is None:
            root = repo_root()
            if root is None:
                raise UsageError("--check needs --out DIR outside a qlrf-run source checkout")
            directory = root / "schemas"
        stale = stale_files(registry, directory)
        if stale:
            for name in stale:
                err(f"{directory / name} is stale: it differs from the step-type definitions")
            err(f"regenerate with: qlrf-run schema --out {directory}")
            exit_with(1)
        out(f"{directory}: schemas are up to date")
        return
    files = schema_files(registry)
    if out_dir is None:
        out(files[RUNBOOK_SCHEMA])
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        out(f"wrote {out_dir / name}")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run schema > runbook.schema.json",
            "qlrf-run schema --out schemas",
            "qlrf-run schema --out schemas --check   # in CI: is the committed copy current?",
        )
    )(schema)
