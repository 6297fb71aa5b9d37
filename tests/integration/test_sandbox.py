"""The step sandbox against the attacks of the adversarial review: a step that names no
secret reads the worker's environment, a sibling step's, the secrets file and the seal
key. On a real `qlrf-run worker`, run as root and as the image's uid 10001."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from runner.client import runs
from runner.pipeline import compile_file
from tests.helpers.cli import EXE, ROOT
from tests.helpers.processes import running
from tests.helpers.waiting import eventually

IMAGE_UID = 10001  # the worker image's user (Dockerfile)
TOKEN = "tok-9f2c1e7a5b3d"
LONG = "long-secret-4a8e1f0c9b7d6e5a"
IN_FILE = "file-secret-0d3c6b9e2f1a"
SEAL = "SEAL-KEY-7e1d4c0b3a9f"

ATTACK = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
inputs:
  secrets_file: {{type: string}}
  seal_key: {{type: string}}
steps:
  - id: holder
    needs: []
    type: shell
    with:
      env: {{HELD: "{{{{ secrets.LONG }}}}"}}
      script: "sleep 4"
  - id: peek
    needs: []
    type: shell
    with:
      script: &peek |
        sleep 1
        echo "parent: $(tr '\\0' ' ' < /proc/$PPID/environ 2>&1)"
        for f in /proc/[0-9]*/environ; do echo "$f: $(tr '\\0' ' ' < "$f" 2>&1)"; done
        for f in /proc/[0-9]*/cmdline; do echo "$f: $(tr '\\0' ' ' < "$f" 2>&1)"; done
        cat "{{{{ inputs.secrets_file }}}}" 2>&1 || true
        cat "{{{{ inputs.seal_key }}}}" 2>&1 || true
        ls /proc | grep -c '^[0-9]' || true
  - id: peek-kept
    needs: []
    type: shell
    with:
      keep_processes: true
      script: *peek
"""


def _python_for(uid: int) -> list[str]:
    """A Python that `uid` may run, and that may start itself again (the worker starts
    its guardian so), with this checkout's packages: this one when its files are open
    to others, else the system's of the same version."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [sys.executable, shutil.which(f"python{version}"), "/usr/bin/python3"]
    for candidate in candidates:
        if candidate is None:
            continue
        probe = subprocess.run(
            ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", candidate,
             "-c", "import subprocess, sys; "
             "subprocess.run([sys.executable, '-c', ''], check=True); print(sys.version_info[:2])"],
            capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return [candidate]
    raise AssertionError(f"no Python {sys.version_info[:2]} that uid {uid} may run")


@pytest.fixture(params=["root", "uid-10001"])
def attacked_worker(request, temporal_address) -> Iterator[dict[str, Any]]:
    """A `qlrf-run worker` holding secrets in its environment and its secrets file, with a
    seal key: as root, or as the image's unprivileged user."""
    as_root = request.param == "root"
    home = Path(tempfile.mkdtemp(prefix="qlrf-sandbox-"))
    home.chmod(0o755)
    secrets_file = home / "worker.secrets"
    secrets_file.write_text(f"FILED={IN_FILE}\n")
    seal = home / "seal"
    seal.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SEAL}\n")
    for path in (secrets_file, seal):
        path.chmod(0o600)
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_TASK_QUEUE": queue,
        "QLRF_STORE": "off",
        "QLRF_SECRET_TOKEN": TOKEN,
        "QLRF_SECRET_LONG": LONG,
        "QLRF_SECRETS_FILE": str(secrets_file),
        "QLRF_SEAL_KEY": str(seal),
        "QLRF_STEP_SANDBOX": "required",
    }
    if as_root:
        command = [EXE, "worker"]
    else:
        for path in (home, secrets_file, seal):
            os.chown(path, IMAGE_UID, IMAGE_UID)
        site = sysconfig.get_paths()["purelib"]
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{site}"
        command = [
            *("setpriv", "--reuid", str(IMAGE_UID), "--regid", str(IMAGE_UID), "--clear-groups"),
            *_python_for(IMAGE_UID),
            "-c", "import sys; from runner.cli.app import main; sys.argv[0] = 'qlrf-run'; main()",
            "worker",
        ]  # fmt: skip
    log = home / "worker.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=sink, cwd=home)

    def started() -> bool:
        assert proc.poll() is None, log.read_text()
        return "sandboxed" in log.read_text()

    eventually(started, lambda: f"the worker starts; it said: {log.read_text()}", poll=0.1)
    try:
        yield {"queue": queue, "secrets_file": secrets_file, "seal": seal, "log": log, "home": home}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def test_a_step_sees_nothing_of_the_worker_nor_of_another_step(
    attacked_worker, temporal_address, tmp_path
):
    """`tr '\\0' '\\n' < /proc/$PPID/environ`, every /proc/*/environ, the secrets file and
    the seal key, from a step that names no secret, while a sibling step holds one in its
    `env:`, in a namespace of its own and in its run's (keep_processes): none of it
    reaches the step. The worker says its steps are sandboxed."""
    name = f"peek-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(ATTACK.format(name=name))
    inputs = [
        f"secrets_file={attacked_worker['secrets_file']}",
        f"seal_key={attacked_worker['seal']}",
    ]
    compiled = compile_file(path, inputs)

    async def go() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        handle, _ = await runs.start(
            client, compiled.plan, compiled.inputs, "mallory",
            task_queue=attacked_worker["queue"], record=False,
        )  # fmt: skip
        await asyncio.wait_for(handle.result(), 120)
        return dict(await handle.query("state"))

    try:
        state = asyncio.run(go())
    except Exception:
        print(attacked_worker["log"].read_text())
        raise
    assert state["status"] == "succeeded", state["error"]
    for step in ("peek", "peek-kept"):
        seen = json.dumps(state["steps"][step]["output"])
        for value in (TOKEN, LONG, IN_FILE, SEAL, "QLRF_SECRET_"):
            assert value not in seen, f"{step} saw {value}: {seen[:3000]}"
        assert "parent:" in seen  # it did look
    assert "steps sandboxed" in attacked_worker["log"].read_text()


KEPT = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: start
    type: shell
    with:
      keep_processes: true
      script: "setsid sleep {duration} </dev/null >/dev/null 2>&1 & echo started"
  - id: look-kept
    type: shell
    with:
      keep_processes: true
      script: "pgrep -f '[s]leep {duration}' >/dev/null && echo seen"
  - id: look-contained
    type: shell
    with:
      script: "pgrep -f '[s]leep {duration}' >/dev/null && echo seen || echo unseen"
"""


def test_kept_processes_outlive_their_step_and_die_with_the_run(run, tmp_path):
    """A server started with keep_processes outlives its step; the run's later steps that
    keep processes see it, one without does not, and it dies when the run closes."""
    duration = f"300.{uuid.uuid4().int % 10**9}"
    outcome = run(KEPT.format(name=f"kept-{uuid.uuid4().hex[:6]}", duration=duration))
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    assert outcome.step("look-kept")["output"]["stdout"].strip() == "seen"
    assert outcome.step("look-contained")["output"]["stdout"].strip() == "unseen"
    eventually(lambda: not running(duration), "the kept process ends with its run", 30)


def test_every_process_of_a_step_dies_with_it(run, tmp_path):
    """Without keep_processes, a daemon a step starts (setsid, out of its process group)
    dies when the step ends: the step had a process namespace of its own."""
    duration = f"300.{uuid.uuid4().int % 10**9}"
    outcome = run(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: daemon\nsteps:\n"
        "  - id: d\n    type: shell\n    with:\n      script: |\n"
        f"        setsid sleep {duration} </dev/null >/dev/null 2>&1 &\n"
    )
    assert outcome.state["status"] == "succeeded"
    eventually(lambda: not running(duration), "the daemon ends with its step", 10, poll=0.05)
