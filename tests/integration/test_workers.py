"""More than one worker on a run's task queue, as an operator ends up with one.

`apply` says when other workers poll its queue; each attempt records the worker that
ran it (history, errors); and a worker set up to trust otherwise than the run refuses
the run's steps, rather than run them by turns with the right one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from runner.client.workers import serving
from tests.helpers.cli import qlrf, worker_process
from tests.helpers.waiting import eventually, eventually_async

pytestmark = pytest.mark.timeout(240)


def _runbook(tmp_path: Path, body: str) -> Path:
    path = tmp_path / f"w-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def _polled(env: dict[str, str], count: int = 1) -> list[str]:
    async def ask() -> list[str]:
        client = await Client.connect(env["QLRF_TEMPORAL_ADDRESS"])
        return await serving(client, env["QLRF_TASK_QUEUE"])

    async def enough() -> list[str] | None:
        found = await ask()
        return found if len(found) >= count else None

    return list(asyncio.run(eventually_async(enough, f"{count} worker(s) poll the queue")))


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)


def test_apply_announces_another_worker_and_history_names_the_worker(
    tmp_path: Path, env: dict[str, str]
) -> None:
    runbook = _runbook(
        tmp_path,
        """\
        apiVersion: qlrf/v1
        kind: Runbook
        name: two-workers
        steps:
          - {id: hello, type: shell, with: {command: [echo, hi]}}
        """,
    )
    other = worker_process(env)
    try:
        (identity,) = _polled(env)
        applied = qlrf("apply", str(runbook), env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"1 other worker polls task queue {env['QLRF_TASK_QUEUE']} ({identity})" in (
            applied.stdout
        )
        assert "steps may run there" in applied.stdout
        run = applied.stdout.split("started run ", 1)[1].split()[0]
        events = json.loads(qlrf("history", run, "--format", "json", env=env).stdout)
        ended = [e for e in events if e["event"] == "step_succeeded" and e["step"] == "hello"]
        assert len(ended) == 1 and "@" in str(ended[0]["actor"]), ended
    finally:
        _stop(other)


def test_a_worker_that_trusts_otherwise_refuses_the_run_s_steps(
    tmp_path: Path, env: dict[str, str]
) -> None:
    key = tmp_path / "someone"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = (tmp_path / "someone.pub").read_text().split()[:2]
    trust = tmp_path / "allowed_signers"
    trust.write_text(f'someone@example.com namespaces="qlrf" {kind} {blob}\n')
    runbook = _runbook(
        tmp_path,
        """\
        apiVersion: qlrf/v1
        kind: Runbook
        name: mixed-trust
        steps:
          - id: review
            type: approval
            with: {message: go?, approvers: [bob]}
          - id: after
            type: shell
            needs: [review]
            retry: {max_attempts: 1}
            with: {command: [echo, released]}
        """,
    )
    claimed = worker_process(env)
    try:
        started = qlrf(
            "apply", str(runbook), "--no-worker", "--detach", "--format", "json", env=env
        )
        assert started.returncode == 0, started.stderr
        run = json.loads(started.stdout)["run_id"]

        def waiting() -> bool:
            shown = json.loads(qlrf("status", run, "--format", "json", env=env).stdout)
            return any(g["status"] == "waiting" for g in shown["gates"])

        eventually(waiting, "the gate waits")
    finally:
        _stop(claimed)
    signed_env = {
        **env,
        "QLRF_ALLOWED_SIGNERS": str(trust),
        "QLRF_INTERNAL_KEY": "test-internal-key-" + "k" * 32,
    }
    signed = worker_process(signed_env)
    try:

        def approved() -> bool:
            return qlrf("approve", run, "review", "--as", "bob", env=env).returncode == 0

        eventually(approved, "bob's approval is accepted (the run is in claimed mode)")

        def failed() -> dict[str, object] | None:
            shown = json.loads(qlrf("status", run, "--format", "json", env=env).stdout)
            return shown if shown["status"] == "failed" else None

        shown = eventually(failed, "the run fails")
        error = shown["steps"]["after"]["error"]
        assert error["type"] == "WorkerMismatch", error
        assert "no signers file (claimed mode)" in error["message"]
        assert "(signed mode)" in error["message"] and "nothing ran" in error["message"]
        assert shown["steps"]["after"]["output"] is None  # the command never ran
    finally:
        _stop(signed)
