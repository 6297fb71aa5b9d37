"""Run ids name one run for good, as an operator re-applying a file meets them.

Applying the same file with the same inputs while its run is open attaches to it;
once that run has closed, the next apply starts a run with an id of its own (the
same prefix, then -2, -3, ...). `status` takes the Temporal run id too, and an
evidence file never overwrites another run's.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.helpers.cli import qlrf

pytestmark = pytest.mark.timeout(240)


def _started(applied: object) -> str:
    out = str(getattr(applied, "stdout", ""))
    assert getattr(applied, "returncode", 1) == 0, out + str(getattr(applied, "stderr", ""))
    return out.split("started run ", 1)[1].split()[0]


def test_a_closed_run_s_id_is_not_reused_and_evidence_is_not_overwritten(
    tmp_path: Path, env: dict[str, str]
) -> None:
    name = f"ids-{uuid.uuid4().hex[:6]}"
    runbook = tmp_path / "ids.yaml"
    runbook.write_text(
        textwrap.dedent(f"""\
        apiVersion: qlrf/v1
        kind: Runbook
        name: {name}
        inputs:
          out: {{type: string}}
        steps:
          - {{id: zeta, type: shell, with: {{command: [echo, first]}}}}
          - {{id: alpha, type: shell, needs: [zeta], with: {{command: [echo, second]}}}}
          - id: bundle
            type: evidence
            needs: [alpha]
            # the same path for every run: the second must not overwrite the first
            with: {{format: json, path: "{{{{ inputs.out }}}}/bundle.json"}}
        """)
    )
    given = ["--input", f"out={tmp_path}"]
    first = _started(qlrf("apply", str(runbook), *given, env=env))
    second = _started(qlrf("apply", str(runbook), *given, env=env))
    third = _started(qlrf("apply", str(runbook), *given, env=env))
    assert first.startswith(name)
    assert (second, third) == (f"{first}-2", f"{first}-3")

    listed = json.loads(qlrf("list", "--format", "json", env=env).stdout)
    ours = [r["run_id"] for r in listed if r["run_id"].startswith(first)]
    assert sorted(ours) == sorted({first, second, third}), listed

    # Each run wrote its own bundle, and each names its own run.
    written = sorted(p.name for p in tmp_path.glob("bundle*.json"))
    assert written == ["bundle-2.json", "bundle-3.json", "bundle.json"], written
    runs = {json.loads((tmp_path / f).read_text())["run"]["run_id"] for f in written}
    assert len(runs) == 3

    # `status` takes the Temporal run id that history and evidence show.
    shown = json.loads(qlrf("status", first, "--format", "json", env=env).stdout)
    by_temporal = qlrf("status", shown["temporal_run_id"], "--format", "json", env=env)
    assert by_temporal.returncode == 0, by_temporal.stderr
    assert json.loads(by_temporal.stdout)["run_id"] == first

    # Steps come in the plan's order, not by name.
    assert list(shown["steps"]) == ["zeta", "alpha", "bundle"]
    text = qlrf("status", first, env=env).stdout
    assert text.index(" zeta ") < text.index(" alpha ") < text.index(" bundle "), text


def test_an_open_run_is_attached_to(tmp_path: Path, env: dict[str, str]) -> None:
    runbook = tmp_path / "open.yaml"
    runbook.write_text(
        textwrap.dedent(f"""\
        apiVersion: qlrf/v1
        kind: Runbook
        name: open-{uuid.uuid4().hex[:6]}
        steps:
          - id: review
            type: approval
            with: {{message: go?, approvers: [bob]}}
        """)
    )
    started = qlrf("apply", str(runbook), "--detach", "--no-worker", "--format", "json", env=env)
    again = qlrf("apply", str(runbook), "--detach", "--no-worker", "--format", "json", env=env)
    first, second = json.loads(started.stdout), json.loads(again.stdout)
    assert second["attached"] and second["run_id"] == first["run_id"]
