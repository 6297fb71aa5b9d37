"""`qlrf-run schedule`, on a real Temporal server: runs on an interval, pinned to the
definition as created, marked as the schedule's in `list` and `status`; pause,
unpause, trigger, update and delete; and clear refusals."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers.cli import qlrf, worker_process
from tests.helpers.worker_ops import until as _until

ONE_STEP = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: say
    type: shell
    with: {{command: [echo, "{words}"]}}
"""
WAIT_SECONDS = 60  # a guard against hangs, not a speed check


@pytest.fixture
def worker(env):
    proc = worker_process(env)
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def _runbook(tmp_path: Path, words: str, name: str | None = None) -> tuple[Path, str]:
    name = name or f"sched-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(ONE_STEP.format(name=name, words=words))
    return path, name


def _ok(*args: str, env: dict[str, str]) -> str:
    done = qlrf(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _described(sid: str, env: dict[str, str]) -> dict:
    return json.loads(_ok("schedule", "describe", sid, "--format", "json", env=env))


def _runs_of(sid: str, env: dict[str, str]) -> list[dict]:
    rows = json.loads(_ok("list", "--format", "json", "--limit", "200", env=env))
    return [r for r in rows if r["schedule"] == sid]


def test_a_schedule_runs_its_pinned_definition_until_paused_and_deleted(env, worker, tmp_path):
    path, name = _runbook(tmp_path, "as created")
    sid = f"every-{uuid.uuid4().hex[:8]}"
    made = _ok("schedule", "create", str(path), "--every", "2s", "--id", sid, env=env)
    assert f"created schedule {sid}" in made
    # The file changes after create: the schedule still runs what was compiled then.
    path.write_text(ONE_STEP.format(name=name, words="edited later"))

    done = _until(
        lambda: [r for r in _runs_of(sid, env) if r["status"] == "succeeded"],
        "a scheduled run succeeds",
    )
    rid = done[0]["run_id"]
    assert done[0]["name"] == name and done[0]["kind"] == "Runbook"
    state = json.loads(_ok("status", rid, "--format", "json", env=env))
    assert state["started_by"] == f"schedule:{sid}"
    assert state["steps"]["say"]["output"]["stdout"].strip() == "as created"
    listed = _ok("list", env=env)
    assert f"(schedule {sid})" in listed
    stored = json.loads(_ok("list", "--store", "--format", "json", "--limit", "200", env=env))
    assert any(r["run_id"] == rid and r["schedule"] == sid for r in stored)

    described = _described(sid, env)
    assert described["when"] == "every 2s" and described["overlap"] == "skip"
    assert described["name"] == name and described["created_by"] == "alice"
    assert described["runs"] >= 1 and not described["paused"]
    assert any(r["run_id"] == rid for r in described["recent"])
    assert sid in _ok("schedule", "list", env=env)

    _ok("schedule", "pause", sid, "--note", "maintenance window", env=env)
    paused = _described(sid, env)
    assert paused["paused"] and paused["note"] == "maintenance window"
    assert paused["next"] == []  # a paused schedule starts nothing
    # Pausing it again keeps the first reason, and says so.
    again = _ok("schedule", "pause", sid, "--note", "something else", env=env)
    assert "is paused already (maintenance window)" in again
    assert _described(sid, env)["note"] == "maintenance window"
    assert all(
        t.endswith("Z") and len(t) == 24
        for r in paused["recent"]
        for t in (r["scheduled_at"], r["started_at"])
    )
    # Three intervals pass with no new run.
    time.sleep(6)
    assert _described(sid, env)["runs"] == paused["runs"]

    _ok("schedule", "unpause", sid, env=env)
    _until(lambda: _described(sid, env)["runs"] > paused["runs"], "runs start again")

    _ok("schedule", "delete", sid, env=env)
    gone = qlrf("schedule", "describe", sid, env=env)
    assert gone.returncode == 1 and f"no schedule '{sid}'" in gone.stderr


def test_trigger_and_update(env, worker, tmp_path):
    path, name = _runbook(tmp_path, "first")
    sid = f"yearly-{uuid.uuid4().hex[:8]}"
    _ok("schedule", "create", str(path), "--cron", "@yearly", "--id", sid, env=env)
    first = _described(sid, env)
    assert first["when"] == "cron 0 0 1 1 *"  # as the server keeps it
    assert first["name"] == name
    assert _described(sid, env)["runs"] == 0

    other, other_name = _runbook(tmp_path, "second")
    _ok("schedule", "update", sid, str(other), env=env)
    assert _described(sid, env)["name"] == other_name
    _ok("schedule", "trigger", sid, env=env)
    [run] = _until(
        lambda: [r for r in _runs_of(sid, env) if r["status"] == "succeeded"],
        "the triggered run succeeds",
    )
    assert run["name"] == other_name
    state = json.loads(_ok("status", run["run_id"], "--format", "json", env=env))
    assert state["steps"]["say"]["output"]["stdout"].strip() == "second"
    _ok("schedule", "delete", sid, env=env)


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--cron", "not a cron"], 2, "5 fields"),
        (["--every", "0s"], 2, "at least 1s"),
        (["--every", "soon"], 2, "not a duration"),
        ([], 2, "exactly one of --cron"),
        (["--cron", "0 3 * * *", "--every", "1h"], 2, "exactly one of --cron"),
        (["--cron", "99 3 * * *"], 1, "refused"),
        (["--every", "1h", "--id", "bad id!"], 2, "schedule id"),
    ],
)
def test_bad_schedules_are_refused(env, tmp_path, args, code, said):
    path, _ = _runbook(tmp_path, "never")
    refused = qlrf("schedule", "create", str(path), *args, env=env)
    assert refused.returncode == code, refused.stdout + refused.stderr
    assert said in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_schedule_id_that_exists_is_refused(env, tmp_path):
    path, _ = _runbook(tmp_path, "twice")
    sid = f"dup-{uuid.uuid4().hex[:8]}"
    _ok("schedule", "create", str(path), "--cron", "0 3 1 1 *", "--id", sid, env=env)
    try:
        again = qlrf("schedule", "create", str(path), "--every", "1h", "--id", sid, env=env)
        assert again.returncode == 1
        assert "already exists" in again.stderr and "schedule update" in again.stderr
    finally:
        _ok("schedule", "delete", sid, env=env)


def test_an_unknown_schedule_is_named(env):
    for command in ("describe", "pause", "trigger", "delete"):
        missing = qlrf("schedule", command, "no-such-schedule", env=env)
        assert missing.returncode == 1, command
        assert "no schedule 'no-such-schedule'" in missing.stderr


def test_an_invalid_runbook_creates_nothing(env, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: qlrf/v1\nkind: Runbook\nname: broken\nsteps: 5\n")
    refused = qlrf("schedule", "create", str(path), "--every", "1h", "--id", "broken", env=env)
    assert refused.returncode == 1 and "broken.yaml:4" in refused.stderr
    missing = qlrf("schedule", "describe", "broken", env=env)
    assert missing.returncode == 1
