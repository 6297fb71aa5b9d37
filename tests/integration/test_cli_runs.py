"""The run commands as an operator uses them, against real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from runner.local.temporal import free_port
from tests.helpers import shapes
from tests.helpers.cli import ROOT, qlrf
from tests.helpers.waiting import eventually


@pytest.fixture
def cluster(temporal_address, monkeypatch) -> dict[str, str]:
    """Point the CLI at the session's dev server, as QLRF_TEMPORAL_ADDRESS does for a cluster."""
    return {"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_USER": "alice"}


def test_apply_status_history_and_list(cluster):
    """apply follows the run to the end; status, history and list then describe it."""
    rid = f"drill-{uuid.uuid4().hex[:8]}"
    applied = qlrf("apply", "tests/runbooks/payments-dr-drill.yaml", "--run-id", rid, env=cluster)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"started run {rid}" in applied.stdout
    lines = applied.stdout.splitlines()
    # The failed attempt is named with its reason, before the step's success.
    failed = next(
        i for i, line in enumerate(lines) if "check-app" in line and "attempt 1 failed" in line
    )
    done = next(i for i, line in enumerate(lines) if "check-app" in line and " ok in " in line)
    assert failed < done and "app still warming up" in lines[failed]
    assert "after 2 attempts" in lines[done]
    assert f"run {rid} succeeded in " in applied.stdout and "(steps: 7 succeeded)" in applied.stdout
    assert "\x1b[" not in applied.stdout  # not a terminal: a plain log
    assert "Traceback" not in applied.stdout + applied.stderr

    status = json.loads(qlrf("status", rid, "--format", "json", env=cluster).stdout)
    assert status["status"] == "succeeded" and status["started_by"] == "alice"
    assert status["steps"]["check-app"]["attempts"] == 2
    assert status["outputs"]["region"] == "us-west-2"
    shapes.check(status, shapes.STATUS)
    assert status["run_id"] == status["workflow_id"] == rid

    events = json.loads(qlrf("history", rid, "--format", "json", env=cluster).stdout)
    names = [e["event"] for e in events]
    assert names[0] == "run_started" and names[-1] == "run_finished"
    # history reads the run store: check-app started, and succeeded on its second attempt.
    ended = [e for e in events if e["event"] == "step_succeeded" and e["step"] == "check-app"]
    assert [e["attempt"] for e in ended] == [2]

    def listed():
        result = qlrf("list", "--kind", "Drill", "--format", "json", env=cluster)
        return [r for r in json.loads(result.stdout) if r["run_id"] == rid]

    [row] = eventually(listed, "the run is listed")
    assert row["name"] == "payments-dr-drill" and row["status"] == "succeeded"


def test_failed_run_exits_1_and_json_prints_only_the_state(cluster):
    """--format json prints the final state alone; a failed run exits 1."""
    rid = f"fo-{uuid.uuid4().hex[:8]}"
    result = qlrf(
        "apply", "examples/failover-rollback.yaml", "--run-id", rid, "--format", "json", env=cluster
    )
    assert result.returncode == 1
    state = json.loads(result.stdout)
    assert state["status"] == "failed" and state["error"]["type"] == "AssertionFailed"
    assert state["steps"]["promote"]["compensation"]["status"] == "succeeded"


def test_reapplying_an_open_run_attaches_to_it(cluster, tmp_path):
    """The same file and inputs while the run is open: no second run is started."""
    runbook = tmp_path / "wait.yaml"
    runbook.write_text(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: attach-" + uuid.uuid4().hex[:6] + "\n"
        "steps:\n  - {id: nap, type: sleep, with: {duration: 2s}}\n"
    )
    detached = qlrf("apply", str(runbook), "--detach", "--format", "json", env=cluster)
    assert detached.returncode == 0, detached.stderr
    ids = json.loads(detached.stdout)
    detached_again = qlrf("apply", str(runbook), "--detach", env=cluster)
    assert detached_again.returncode == 0, detached_again.stderr
    assert detached_again.stdout.strip() == f"attached to the open run {ids['run_id']}"
    assert json.loads(
        qlrf("apply", str(runbook), "--detach", "--format", "json", env=cluster).stdout
    )["attached"]
    again = qlrf("apply", str(runbook), env=cluster)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"attached to the open run {ids['run_id']}" in again.stdout


def test_cancel_through_a_separate_worker_process(cluster, tmp_path):
    """A `qlrf-run worker` runs the run; `cancel --wait` stops it; SIGTERM stops the worker."""
    log = tmp_path / "log"
    runbook = tmp_path / "long.yaml"
    runbook.write_text(f"""\
apiVersion: qlrf/v1
kind: Runbook
name: cancel-{uuid.uuid4().hex[:6]}
steps:
  - {{id: nap, type: sleep, with: {{duration: 1h}}}}
finally:
  - {{id: cleanup, type: shell, with: {{script: 'echo cleaned >> {log}'}}}}
""")
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("qlrf-run")), "worker"],
        cwd=ROOT,
        env={**os.environ, **cluster},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = qlrf("apply", str(runbook), "--detach", "--format", "json", env=cluster)
        rid = json.loads(started.stdout)["run_id"]

        def sleeping():
            result = qlrf("status", rid, "--format", "json", env=cluster)
            return (
                result.returncode == 0
                and json.loads(result.stdout)["steps"]["nap"]["status"] == "running"
            )

        eventually(sleeping, "the step nap runs")
        cancelled = qlrf("cancel", rid, "--wait", env=cluster)
        assert cancelled.returncode == 0 and f"run {rid}: cancelled" in cancelled.stdout
        state = json.loads(qlrf("status", rid, "--format", "json", env=cluster).stdout)
        assert state["steps"]["nap"]["status"] == "cancelled"
        assert state["steps"]["cleanup"]["status"] == "succeeded"
        assert log.read_text() == "cleaned\n"
        # Who cancelled is in the audit trail, in claimed mode too.
        events = json.loads(qlrf("history", rid, "--format", "json", env=cluster).stdout)
        asked = [e for e in events if e["event"] == "cancel_requested"]
        assert asked and asked[0]["actor"] == "alice", asked
        closed = qlrf("cancel", rid, env=cluster)
        assert closed.returncode == 1, closed.stdout
        assert "has already ended (canceled)" in closed.stderr
        assert "cancel requested" not in closed.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert "stopped" in output and "Traceback" not in output


def test_unknown_run_is_a_clear_error(cluster):
    """status of a run that does not exist says so, with exit 1 and no traceback."""
    result = qlrf("status", "no-such-run", env=cluster)
    assert result.returncode == 1
    assert "no run 'no-such-run'" in result.stderr and "Traceback" not in result.stderr


def test_embedded_default_is_shared_persistent_and_recovers(tmp_path):
    """Without QLRF_TEMPORAL_ADDRESS: one local server, reused, surviving a restart."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "QLRF_TEMPORAL_ADDRESS": ""}
    env_vars = {k: v for k, v in env.items() if v}
    clean = {k: v for k, v in os.environ.items() if k != "QLRF_TEMPORAL_ADDRESS"}

    def cli(*args):
        return subprocess.run(
            [str(Path(sys.executable).with_name("qlrf-run")), *args],
            cwd=ROOT,
            env={**clean, **env_vars},
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        applied = cli(
            "apply", "tests/runbooks/payments-dr-drill.yaml", "--run-id", "embedded-drill"
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        state_dir = tmp_path / "state" / "qlrf-run"
        first = json.loads((state_dir / "temporal.json").read_text())
        assert (state_dir / "temporal.db").exists()
        assert cli("status", "embedded-drill").returncode == 0
        assert json.loads((state_dir / "temporal.json").read_text())["pid"] == first["pid"]

        assert cli("dev", "--stop").stdout.strip() == "stopped"
        again = cli("status", "embedded-drill", "--format", "json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["status"] == "succeeded", "the run survived a restart"
        second = json.loads((state_dir / "temporal.json").read_text())
        assert second["pid"] != first["pid"]

        # A stale record (the server died without cleaning up) is replaced.
        os.killpg(second["pid"], signal.SIGKILL)
        time.sleep(0.2)
        recovered = cli("status", "embedded-drill")
        assert recovered.returncode == 0, recovered.stderr
    finally:
        cli("dev", "--stop")


def test_dev_runs_in_the_foreground_until_interrupted(tmp_path):
    """`qlrf-run dev` serves until SIGINT, then stops the server it started."""
    env = {k: v for k, v in os.environ.items() if k != "QLRF_TEMPORAL_ADDRESS"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    exe = str(Path(sys.executable).with_name("qlrf-run"))
    web = free_port()
    proc = subprocess.Popen(
        [exe, "dev", "--web-port", str(web)], env=env, stdout=subprocess.PIPE, text=True
    )
    info = tmp_path / "state" / "qlrf-run" / "temporal.json"
    eventually(info.exists, f"{info} is written")
    pid = json.loads(info.read_text())["pid"]
    status = subprocess.run([exe, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    # The approvals pages run beside it, on the embedded server.
    ready = f"http://127.0.0.1:{web}/readyz"
    eventually(
        lambda: httpx.get(ready, timeout=2).status_code == 200,
        ready,
        60,
        ignoring=(httpx.HTTPError,),
    )
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert "Temporal UI:" in output and output.rstrip().endswith("stopped")
    assert f"Approvals pages:     http://127.0.0.1:{web}" in output
    eventually(lambda: not _answers(f"http://127.0.0.1:{web}/healthz"), "serve stopped", 20)
    eventually(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        ),
        f"the dev server (pid {pid}) ended",
        10,
        ignoring=(OSError,),
    )


def test_concurrent_invocations_share_one_server(tmp_path):
    """Several processes asking at once for the embedded server get the same one."""
    env = {k: v for k, v in os.environ.items() if k != "QLRF_TEMPORAL_ADDRESS"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    exe = str(Path(sys.executable).with_name("qlrf-run"))
    procs = [
        subprocess.Popen([exe, "dev", "--detach"], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        addresses = {
            line
            for out in outputs
            for line in out.splitlines()
            if line.startswith("Temporal dev server:")
        }
        assert len(addresses) == 1, outputs
    finally:
        subprocess.run([exe, "dev", "--stop"], env=env, capture_output=True, timeout=60)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
