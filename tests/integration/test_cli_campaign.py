"""examples/patch-campaign.yaml from the CLI, as an operator runs it: waves as progress
bars, an approval between waves, live control, and a failure budget stopping the fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import testhosts
from tests.helpers.cli import ROOT, qlrf
from tests.helpers.waiting import eventually


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Path]:
    """Twenty real sshd hosts on 127.0.0.1 (tests/fixtures/testhosts.py)."""
    folder = tmp_path / "fleet"
    testhosts.start(folder, 20)
    yield folder
    testhosts.stop(folder)


def test_patch_campaign_waves_gate_control_and_budget_stop(temporal_address, fleet):
    env = {**os.environ, "QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_USER": "alice"}
    rid = f"patch-{uuid.uuid4().hex[:8]}"
    apply = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("qlrf-run")),
            "apply",
            "examples/patch-campaign.yaml",
            "--run-id",
            rid,
            "-i",
            f"hosts=@{fleet / 'inventory.json'}",
            "-i",
            f"known_hosts={fleet / 'known_hosts'}",
            "-i",
            "broken_host=host-2",
        ],
        cwd=ROOT,
        env={**env, "QLRF_SECRETS_FILE": str(fleet / "secrets")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def staged_gate():
            rows = json.loads(qlrf("pending", "--format", "json", env=env).stdout or "[]")
            return [r for r in rows if r["run_id"] == rid]

        [row] = eventually(staged_gate, "the staged wave's gate is pending")
        assert row["gate"] == "patch/staged" and "items 2-2 of 20" in row["message"]

        status = qlrf("status", rid, env=env).stdout
        assert "20 items, 10 at once" in status
        assert "wave canary" in status and "1/1 done, 0 failed" in status
        assert "waiting for gate patch/staged" in status

        # Live control while the campaign waits at its gate.
        assert qlrf("resume", rid, env=env).returncode == 1  # not paused
        paused = qlrf("pause", rid, "--comment", "change freeze check", env=env)
        assert paused.returncode == 0 and "paused by alice" in paused.stdout
        assert "paused by alice" in qlrf("status", rid, env=env).stdout
        assert qlrf("resume", rid, env=env).returncode == 0
        set_ = qlrf("set", rid, "patch", "--concurrency", "5", env=env)
        assert set_.returncode == 0 and "now runs 5 items at once" in set_.stdout
        too_many = qlrf("set", rid, "patch", "--concurrency", "50", env=env)
        assert too_many.returncode == 1 and "over this run's limit of 20" in too_many.stderr
        assert qlrf("skip", rid, "patch", "host-20", env=env).returncode == 0
        unknown = qlrf("skip", rid, "patch", "host-99", env=env)
        assert unknown.returncode == 1 and "no item 'host-99'" in unknown.stderr

        approved = qlrf("approve", rid, "patch/staged", "--comment", "canary is fine", env=env)
        assert approved.returncode == 0, approved.stderr
        out, errors = apply.communicate(timeout=120)
    finally:
        if apply.poll() is None:
            apply.kill()
    # host-2 is in the staged wave, whose 5% of 1 item tolerates no failure.
    assert apply.returncode == 1, out + errors
    lines = out.splitlines()
    waits = [i for i, line in enumerate(lines) if "gate patch/staged" in line and "waits" in line]
    assert len(waits) == 1, out  # announced once
    decided = [
        i for i, line in enumerate(lines) if "gate patch/staged" in line and "approved" in line
    ]
    assert decided and "approved by alice: canary is fine" in lines[decided[0]]
    assert "paused by alice (change freeze check)" in out and "resumed by alice" in out
    # The item that failed is named with its reason, before the wave and the step end.
    item = next(i for i, line in enumerate(lines) if "patch [host-2]" in line)
    assert "the package database is locked" in lines[item]
    wave = next(
        i for i, line in enumerate(lines) if "patch/staged" in line and "wave failed" in line
    )
    step = next(i for i, line in enumerate(lines) if "  patch " in line and "FAILED" in line)
    assert waits[0] < decided[0] < item < wave < step
    assert "1 item(s) failed:" in out and "patch [host-2]: CommandFailed" in out
    assert "FailureBudgetExceeded: wave 'staged' had 1 failed item, over its budget of 0" in out
    assert "host-2; the campaign stopped before wave 'fleet'" in out
    assert "Traceback" not in out + errors

    state = json.loads(qlrf("status", rid, "--format", "json", env=env).stdout)
    waves = state["steps"]["patch"]["output"]["waves"]
    assert [(w["name"], w["size"], w["status"]) for w in waves] == [
        ("canary", 1, "succeeded"),
        ("staged", 1, "failed"),
        ("fleet", 18, "not_started"),
    ]
    assert state["steps"]["report"]["status"] == "succeeded"  # trigger_rule: always
    assert [c["action"] for c in state["controls"]] == ["pause", "resume", "concurrency", "skip"]

    history = qlrf("history", rid, env=env).stdout
    assert "step_failed      patch [host-2] attempt 2" in history
    assert "wave_finished" in history and "concurrency_set" in history
