"""`qlrf-run init NAME`: a starter runbook that validates, with editor autocomplete wired."""

from __future__ import annotations

import os
import re
from pathlib import Path

import typer

from runner.cli.common import Kind, examples, out
from runner.errors import UsageError

_STARTERS = {
    "Drill": """\
# yaml-language-server: $schema={schema}
apiVersion: qlrf/v1
kind: Drill
name: {name}
description: Disaster-recovery drill; provision, validate, measure the recovery time
inputs:
  region:
    type: string
    default: us-west-2
    description: Region to recover into
  rto_target_seconds:
    type: integer
    default: 900
    description: Recovery time objective
defaults:
  retry: {{max_attempts: 3}}
  timeout: 10m
timeout: 2h
steps:
  - id: provision
    name: Provision the pilot light
    type: shell
    with:
      script: echo "provisioning in {{{{ inputs.region }}}}"
  - id: validate
    name: Check the service answers
    type: shell
    with:
      command: [echo, ok]
  - id: measure
    name: Check the recovery time
    type: assert
    with:
      that: "{{{{ steps.validate.duration_seconds < inputs.rto_target_seconds }}}}"
      message: Recovery took longer than the target
finally:
  - id: report
    type: notify
    with:
      message: "drill {{{{ run.name }}}} finished"
outputs:
  validated_at: "{{{{ steps.validate.finished_at }}}}"
""",
    "Campaign": """\
# yaml-language-server: $schema={schema}
apiVersion: qlrf/v1
kind: Campaign
name: {name}
description: Roll a change out canary, staged, then fleet
inputs:
  hosts:
    type: array
    items: {{type: string}}
    default: [host-1, host-2, host-3, host-4]
    description: The fleet
concurrency: 10
steps:
  - id: patch
    name: Patch each host
    type: shell
    foreach: "{{{{ inputs.hosts }}}}"
    as: host
    with:
      command: [echo, patching, "{{{{ host }}}}"]
    waves:
      - {{name: canary, size: 1}}
      - {{name: fleet, size: "100%", approval: true}}
    max_failures: 0
""",
}
_STARTERS["Runbook"] = _STARTERS["Drill"].replace("kind: Drill", "kind: Runbook")
_STARTERS["Task"] = """\
# yaml-language-server: $schema={schema}
apiVersion: qlrf/v1
kind: Task
name: {name}
description: A task that a person approves before it runs
inputs:
  target:
    type: string
    default: staging
    description: Where the task applies
steps:
  - id: approve
    type: approval
    with:
      message: "Run the task against {{{{ inputs.target }}}}?"
      modifiable: [target]
  - id: run
    type: shell
    with:
      command: [echo, running on, "{{{{ inputs.target }}}}"]
"""


def _schema_reference(directory: Path) -> tuple[str, Path | None]:
    """A relative path to a runbook schema: an existing schemas/ above, or one written
    now (then also its path)."""
    from runner.dsl.definitions import default_registry
    from runner.dsl.publish import RUNBOOK_SCHEMA, schema_files

    here = directory.resolve()
    for folder in (here, *here.parents):
        candidate = folder / "schemas" / RUNBOOK_SCHEMA
        if candidate.is_file():
            return Path(os.path.relpath(candidate, here)).as_posix(), None
    target = here / ".qlrf" / RUNBOOK_SCHEMA
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_files(default_registry())[RUNBOOK_SCHEMA], encoding="utf-8")
    return Path(os.path.relpath(target, here)).as_posix(), target


def init(
    name: str = typer.Argument(..., help="Runbook name: lowercase letters, digits and -"),
    kind: Kind = typer.Option(Kind.Drill, "--kind", "-k", help="What the runbook is"),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write NAME.yaml"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file"),
) -> None:
    """Write NAME.yaml, a starter runbook with the schema modeline for editor autocomplete."""
    from runner.dsl.language import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        raise UsageError(
            f"'{name}' is not a valid runbook name; use 1-63 lowercase letters, digits and '-'"
        )
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    schema, written = _schema_reference(directory)
    text = _STARTERS[kind].format(name=name, schema=schema)
    target.write_text(text, encoding="utf-8")
    if written is not None:
        out(f"wrote {written}: the runbook schema its first line points your editor at")
    out(f"wrote {target}; check it with: qlrf-run validate {target}")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples("qlrf-run init nightly-patch", "qlrf-run init dr-drill --kind Drill")
    )(init)
