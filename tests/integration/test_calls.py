"""What one decision costs the server, and how soon a person hears that no worker is
there: `approve` and `modify` each make at most three calls before their Update, and
say at once (one short question, no longer wait) that no worker serves the run, also
just after the last one stopped.

The calls are counted at the SDK's lowest level (tests/helpers/rpc_count.py), in the
real command, against the session's dev server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.helpers.cli import ROOT, qlrf, worker_process
from tests.helpers.worker_ops import until

GATED = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
inputs:
  batch: {{type: integer, default: 1}}
steps:
  - id: review
    type: approval
    with: {{message: "go with {{{{ inputs.batch }}}}?", approvers: [bob], modifiable: [batch]}}
  - id: act
    type: shell
    with: {{command: [echo, "batch {{{{ inputs.batch }}}}"]}}
"""
# One decision's calls before its Update (DESIGN: the run's trust mode, a worker, and
# what a signature binds, read from the run itself).
MOST_CALLS = 3


def _gated_run(tmp_path: Path, env: dict[str, str]) -> str:
    name = f"calls-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(GATED.format(name=name))
    started = qlrf("apply", str(path), "--detach", "--format", "json", env=env)
    assert started.returncode == 0, started.stderr
    return str(json.loads(started.stdout)["run_id"])


def _waiting(rid: str, env: dict[str, str]) -> bool:
    shown = qlrf("status", rid, "--format", "json", env=env)
    gates = json.loads(shown.stdout)["gates"] if shown.returncode == 0 else []
    return any(g["gate"] == "review" and g["status"] == "waiting" for g in gates)


def _counted(log: Path, env: dict[str, str], *args: str) -> tuple[Any, list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.rpc_count", str(log), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = log.read_text().split() if log.exists() else []
    return done, calls


def _before_update(calls: list[str]) -> list[str]:
    assert "update_workflow_execution" in calls, calls
    return calls[: calls.index("update_workflow_execution")]


def test_approve_and_modify_make_at_most_three_calls_before_their_update(env, tmp_path):
    worker = worker_process(env)
    try:
        modified, approved = _gated_run(tmp_path, env), _gated_run(tmp_path, env)
        until(lambda: _waiting(modified, env) and _waiting(approved, env), "both gates wait")

        done, calls = _counted(
            tmp_path / "modify.log",
            env,
            "modify",
            modified,
            "review",
            "--set",
            "batch=3",
            "--as",
            "bob",
        )
        assert done.returncode == 0, done.stderr
        assert "modify by bob (unverified) accepted" in done.stdout
        assert len(_before_update(calls)) <= MOST_CALLS, calls

        log = tmp_path / "approve.log"
        done, calls = _counted(log, env, "approve", approved, "review", "--as", "bob")
        assert done.returncode == 0, done.stderr
        assert "approve by bob (unverified) accepted" in done.stdout
        before = _before_update(calls)
        assert len(before) <= MOST_CALLS, calls
        # The run's own answer, not the state of the whole run, is what it asks.
        assert before.count("query_workflow") == 1, calls
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def test_approve_says_at_once_that_no_worker_serves_the_run(env, tmp_path):
    """One second after the last worker stopped, its poll is still listed. The run's
    own silence to one short question (BASIS_SECONDS), with the server's word that the
    listed worker stopped, is the answer: no longer wait, and nothing is sent. Counted
    in calls, not seconds, so a busy machine cannot make it pass or fail."""
    worker = worker_process(env)
    try:
        rid = _gated_run(tmp_path, env)
        until(lambda: _waiting(rid, env), "the gate waits")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    time.sleep(1)  # the moment the issue names: a second after the last worker stopped

    for name, args in (
        ("approve", ["approve", rid, "review", "--as", "bob"]),
        ("pause", ["pause", rid, "--as", "bob"]),
    ):
        done, calls = _counted(tmp_path / f"{name}.log", env, *args)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "no worker" in done.stderr and "nothing was signed or sent" in done.stderr
        assert "Traceback" not in done.stderr
        # One short question, the server's list of workers, and nothing after it: not
        # the longer wait a busy worker is given, and no Update.
        assert calls.count("query_workflow") == 1, calls
        assert "list_workers" in calls, calls
        assert calls[-1] == "list_workers", calls
        assert "update_workflow_execution" not in calls, calls
        assert "signal_workflow_execution" not in calls, calls
