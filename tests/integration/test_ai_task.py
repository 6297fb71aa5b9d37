"""The AI-proposed task of examples/ as an approver meets it: a rejection is audited,
and a template that reads the output of a step that never gave one says why."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT, detached, qlrf, worker_process
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.timeout(240)


def _status(run: str, env: dict[str, str]) -> dict[str, object]:
    return dict(json.loads(qlrf("status", run, "--format", "json", env=env).stdout))


def test_a_rejected_proposal_is_audited(tmp_path: Path, env: dict[str, str]) -> None:
    audit = tmp_path / "audit.jsonl"
    worker = worker_process(env)
    try:
        run = detached(ROOT / "examples/ai-task-approval.yaml", env, "-i", f"audit_log={audit}")

        def rejected() -> bool:
            said = qlrf("reject", run, "review", "--as", "bob", "--comment", "too risky", env=env)
            return said.returncode == 0

        eventually(rejected, "bob's rejection is accepted")
        ended = eventually(
            lambda: (s := _status(run, env))["status"] != "running" and s, "the run ends"
        )
        assert ended["status"] == "failed"
        steps = ended["steps"]
        assert isinstance(steps, dict)
        assert steps["audit"]["status"] == "succeeded", steps["audit"]
        (record,) = [json.loads(line) for line in audit.read_text().splitlines()]
        assert record["run"] == run and record["review"] == "failed"
        assert record["decision"] == "rejected" and record["rejected_by"] == "bob"
        assert record["comment"] == "too risky" and record["approvals"] == []
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def test_reading_the_output_of_a_skipped_step_says_why_it_is_undefined(
    tmp_path: Path, env: dict[str, str]
) -> None:
    runbook = tmp_path / "skipped.yaml"
    runbook.write_text(
        textwrap.dedent("""\
        apiVersion: qlrf/v1
        kind: Runbook
        name: skipped-output
        steps:
          - {id: broken, type: shell, with: {command: ["false"]}, retry: {max_attempts: 1}}
          - {id: build, type: shell, needs: [broken], with: {command: [echo, built]}}
          - id: report
            type: shell
            needs: [build]
            trigger_rule: all_done
            with: {command: [echo, "{{ steps.build.output.stdout }}"]}
        """)
    )
    applied = qlrf("apply", str(runbook), "--format", "json", env=env)
    assert applied.returncode == 1, applied.stderr
    state = json.loads(applied.stdout)
    error = state["steps"]["report"]["error"]
    assert error["type"] == "TemplateError", error
    assert "`steps.build.output` is undefined: `build` was skipped" in error["message"], error
