"""Chaos on real servers: SIGKILLed workers, a restarted Temporal server, secrets hunted
for everywhere they could leak. (The PostgreSQL outage is in test_store.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.chaos import kill_scenario
from tests.helpers.cli import qlrf
from tests.helpers.hunt import found_in, recorded
from tests.helpers.waiting import eventually

CI_KILLS = 5


@pytest.mark.timeout(900)
def test_workers_killed_at_random_moments_lose_nothing(temporal_address, postgres_uri, tmp_path):
    """Five SIGKILLs during ten shell steps: the run completes, no two attempts of a step
    overlap, no completed step runs again, and the store has every attempt."""
    figures = asyncio.run(kill_scenario(temporal_address, postgres_uri, tmp_path, CI_KILLS))
    print(figures.text())
    assert figures.kills == CI_KILLS or figures.completed
    assert figures.completed
    assert figures.overlaps == []
    assert figures.duplicated == []
    assert figures.lost_rows == []


def _embedded_env(tmp_path: Path, postgres_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "QLRF_TEMPORAL_ADDRESS"}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), QLRF_DATABASE_URL=postgres_uri)
    return env


def _wait_for(path: Path, text: str, seconds: float = 60) -> None:
    eventually(
        lambda: path.exists() and text in path.read_text(),
        f"{text!r} in {path}",
        seconds,
        poll=0.05,
    )


@pytest.mark.timeout(300)
def test_a_restarted_embedded_server_never_repeats_or_kills_a_step(
    tmp_path, postgres_uri, monkeypatch
):
    """Stop the embedded server while a step runs, and bring it back after the step has
    finished: the step's result reaches the run once the server is back, and the step
    does not run again. A second restart while a long step runs leaves that step
    alone (it is not killed, and runs once). Both restarts keep the server's port."""
    from temporalio.client import Client

    from runner.client import runs
    from runner.client import state as client_state
    from runner.local.temporal import EmbeddedServer
    from runner.pipeline import compile_file

    env = _embedded_env(tmp_path, postgres_uri)
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    monkeypatch.delenv("QLRF_TEMPORAL_ADDRESS", raising=False)
    server = EmbeddedServer()
    first = server.ensure(ui=False)
    marks = tmp_path / "marks"
    path = tmp_path / "steps.yaml"
    path.write_text(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: restart\nsteps:\n"
        f"  - {{id: a, type: shell, with: {{script: 'echo a-start >> {marks}; sleep 2; "
        f"echo a-end >> {marks}'}}}}\n"
        f"  - {{id: b, type: shell, with: {{script: 'echo b-start >> {marks}; sleep 12; "
        f"echo b-end >> {marks}'}}}}\n"
    )
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("qlrf-run")), "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def start() -> str:
            client = await Client.connect(first.address)
            compiled = compile_file(path)
            handle, _ = await runs.start(client, compiled.plan, {}, "tester", record=False)
            return handle.id

        rid = asyncio.run(start())
        _wait_for(marks, "a-start")
        server.stop()
        _wait_for(marks, "a-end")  # the step finished while the server was away
        time.sleep(3)  # longer than the SDK's own retries of the step's result
        second = server.ensure(ui=False)
        assert second.port == first.port
        _wait_for(marks, "b-start")
        server.stop()
        third = server.ensure(ui=False)
        assert third.port == first.port

        async def finish() -> dict[str, Any]:
            client = await Client.connect(third.address)
            handle = client.get_workflow_handle(rid)
            await asyncio.wait_for(handle.result(), 120)
            return (await client_state.view_of(handle)).to_json()

        state = asyncio.run(finish())
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        server.stop()
    assert state["status"] == "succeeded"
    assert marks.read_text().split() == ["a-start", "a-end", "b-start", "b-end"]
    assert {sid: step["attempts"] for sid, step in state["steps"].items()} == {"a": 1, "b": 1}


def test_a_restarted_server_waits_for_its_own_port(tmp_path, monkeypatch):
    """The embedded server never moves to another port (its workers could not deliver
    what finished meanwhile): while another process holds its port, a restart waits,
    and it comes back on that port once it is let go; held for good, it says so."""
    import threading

    from runner.errors import QlrfError
    from runner.local import temporal
    from runner.local.temporal import EmbeddedServer

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    server = EmbeddedServer()
    first = server.ensure(ui=False)
    server.stop()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", first.port))
    blocker.listen()
    threading.Timer(2.0, blocker.close).start()
    try:
        second = server.ensure(ui=False)
        assert second.port == first.port
        server.stop()
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", first.port))
        blocker.listen()
        monkeypatch.setattr(temporal, "PORT_WAIT_SECONDS", 0.5)
        with pytest.raises(QlrfError, match=f"port 127.0.0.1:{first.port} is taken"):
            server.ensure(ui=False)
    finally:
        blocker.close()
        server.stop()


SECRET = "hunter2-Very-Secret-Value"
OTHER = "another-secret-nobody-asked-for"


@pytest.mark.timeout(600)
def test_a_secret_is_found_nowhere_whatever_the_step_tries(
    temporal_address, postgres_uri, tmp_path, monkeypatch
):
    """A step that prints the worker's environment, echoes a forged reference, and prints
    the secret it was given in plain, reversed, base64, URL and hex forms: the value and
    its encodings reach neither Temporal history, nor the store, nor the worker's log,
    nor any CLI output."""
    from runner.secretref import marker

    monkeypatch.setenv("QLRF_SECRET_TOKEN", SECRET)
    runbook = tmp_path / "leaky.yaml"
    runbook.write_text(
        f"""apiVersion: qlrf/v1
kind: Runbook
name: leaky-{uuid.uuid4().hex[:6]}
inputs:
  forged: {{type: string}}
  forged_other: {{type: string}}
steps:
  - id: environment
    type: shell
    with: {{script: 'env; echo "token=${{QLRF_SECRET_TOKEN:-unset}}"'}}
  - id: forged
    type: shell
    with: {{command: [echo, "{{{{ inputs.forged }}}}"]}}
  - id: encoded
    type: shell
    with:
      env: {{T: "{{{{ secrets.TOKEN }}}}"}}
      script: |
        echo "$T"; echo "$T" | rev; printf %s "$T" | base64
        printf %s "$T" | od -An -tx1 | tr -d ' \\n'; echo
        python3 -c 'import os, urllib.parse; print(urllib.parse.quote(os.environ["T"], safe=""))'
  - id: mixed
    type: shell
    on_failure: continue
    with: {{command: [echo, "x{{{{ secrets.TOKEN }}}}{{{{ inputs.forged_other }}}}"]}}
"""
    )
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": postgres_uri,
        "QLRF_USER": "tester",
        "QLRF_SECRET_TOKEN": SECRET,
        "QLRF_SECRET_OTHER": OTHER,
    }
    queue = f"leaky-{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("qlrf-run")), "worker", "--task-queue", queue],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        inputs = tmp_path / "inputs.json"  # `--input k=@...` would read a file
        inputs.write_text(json.dumps({"forged": marker("TOKEN"), "forged_other": marker("OTHER")}))
        started = qlrf(
            "apply",
            str(runbook),
            "--no-worker",
            "--format",
            "json",
            "--inputs-file",
            str(inputs),
            env={**env, "QLRF_TASK_QUEUE": queue},
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        log, _ = worker.communicate(timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads(started.stdout)
    rid = state["workflow_id"]
    assert state["steps"]["environment"]["output"]["stdout"].count("token=unset") == 1
    assert state["steps"]["forged"]["output"]["stdout"].strip() == marker("TOKEN")
    assert state["steps"]["encoded"]["status"] == "succeeded"
    assert state["steps"]["mixed"]["error"]["type"] == "TemplateError"
    assert "does not name" in state["steps"]["mixed"]["error"]["message"]

    cli = [
        qlrf("status", rid, "--format", "json", env=env).stdout,
        qlrf("history", rid, "--format", "json", env=env).stdout,
        qlrf("evidence", rid, env=env).stdout,
        started.stdout,
        started.stderr,
    ]
    places = {
        "temporal and store": asyncio.run(recorded(temporal_address, postgres_uri, rid)),
        "worker log": log,
        "cli": "\n".join(cli),
    }
    assert found_in(places, SECRET, OTHER) == []
