"""Upgrades never change the code that replays an open run: with Worker Versioning, a
run waiting at a gate on build v1 finishes on v1 after v2 became current, even though
v2 would not replay v1's history, and new runs go to v2."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import EventType

from runner.client.connect import Target, connect
from runner.contract import WORKFLOW_TYPE, RunInput
from runner.engine.batch import BatchWorkflow
from runner.engine.interpreter import RunbookWorkflow
from runner.observe.versions import (
    current_build,
    default_build_id,
    deployment_config,
    interpreter_digest,
    make_current,
)
from runner.worker import build_worker
from tests.helpers.cli import EXE, qlrf
from tests.helpers.gates import gated_runbook

WAIT_SECONDS = 60  # a guard against hangs


@workflow.defn(name=WORKFLOW_TYPE)
class ReorderedRunbook(RunbookWorkflow):
    """Build v2: a behaviour change that cannot replay v1's history, because its first
    command is a timer where v1's is the run's first step."""

    @workflow.run
    async def run(self, request: RunInput) -> Any:
        await workflow.sleep(timedelta(milliseconds=1))
        return await super().run(request)


def _write(tmp_path: Path) -> Path:
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(gated_runbook(name, "upgrade now?"))
    return path


async def _cli(*args: str, env: dict[str, str]) -> Any:
    done = await asyncio.to_thread(qlrf, *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


async def _gate_waits(rid: str, env: dict[str, str]) -> None:
    for _ in range(int(WAIT_SECONDS / 0.3)):
        shown = await asyncio.to_thread(qlrf, "status", rid, "--format", "json", env=env)
        if shown.returncode == 0 and any(
            g["status"] == "waiting" for g in json.loads(shown.stdout)["gates"]
        ):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the gate of {rid} never waited")


async def _status(rid: str, env: dict[str, str]) -> str:
    shown = await _cli("status", rid, "--format", "json", env=env)
    return str(json.loads(shown.stdout)["status"])


async def _builds(client: Any, rid: str) -> set[str]:
    """The builds that completed the run's workflow tasks, and whether any failed."""
    builds = set()
    async for event in client.get_workflow_handle(rid).fetch_history_events():
        assert event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, event
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            builds.add(event.workflow_task_completed_event_attributes.deployment_version.build_id)
    return builds


async def _upgrade(temporal_address: str, tmp_path: Path) -> None:
    client = await connect(Target(temporal_address, "default", None, False))
    deployment = f"qlrf-{uuid.uuid4().hex[:8]}"
    queue = f"upgrade-{uuid.uuid4().hex[:8]}"
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_TASK_QUEUE": queue,
        "QLRF_USER": "alice",
    }
    v1 = build_worker(client, task_queue=queue, deployment=deployment_config(deployment, "v1"))
    async with v1:
        assert await current_build(client, deployment) in (None, "")
        await make_current(client, deployment, "v1")
        started = await _cli(
            "apply", str(_write(tmp_path)), "--detach", "--no-worker", "--format", "json", env=env
        )
        pinned = json.loads(started.stdout)["run_id"]
        await _gate_waits(pinned, env)

        v2 = build_worker(
            client,
            task_queue=queue,
            deployment=deployment_config(deployment, "v2"),
            workflows=[ReorderedRunbook, BatchWorkflow],
        )
        async with v2:
            await make_current(client, deployment, "v2")
            assert await current_build(client, deployment) == "v2"

            await _cli("approve", pinned, "review", "--as", "bob", env=env)
            await asyncio.wait_for(client.get_workflow_handle(pinned).result(), WAIT_SECONDS)
            assert await _status(pinned, env) == "succeeded"
            assert await _builds(client, pinned) == {"v1"}  # and no task failed

            fresh = await _cli(
                "apply",
                str(_write(tmp_path)),
                "--detach",
                "--no-worker",
                "--format",
                "json",
                env=env,
            )
            new = json.loads(fresh.stdout)["run_id"]
            await _gate_waits(new, env)
            assert await _builds(client, new) == {"v2"}
            history = await client.get_workflow_handle(new).fetch_history()
            assert any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)
            await _cli("approve", new, "review", "--as", "bob", env=env)
            await asyncio.wait_for(client.get_workflow_handle(new).result(), WAIT_SECONDS)
            assert await _status(new, env) == "succeeded"


def test_an_open_run_finishes_on_the_build_that_started_it(temporal_address, tmp_path):
    asyncio.run(_upgrade(temporal_address, tmp_path))


def test_the_default_build_id_follows_the_interpreter_code():
    build = default_build_id()
    assert build.endswith("-" + interpreter_digest())
    assert len(interpreter_digest()) == 12


def test_a_worker_refused_by_the_server_says_so(temporal_address):
    # A deployment name the server refuses (too long for its id limit).
    refused = qlrf(
        "worker",
        "--deployment",
        "d" * 2000,
        "--build-id",
        "v1",
        env={"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_TASK_QUEUE": "refused"},
        timeout=90,
    )
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "refused" in refused.stderr or "deployment" in refused.stderr, refused.stderr


ONE_STEP = """\
apiVersion: qlrf/v1
kind: Runbook
name: after-a-versioned-worker
steps:
  - id: hello
    type: shell
    with: {command: [echo, hi]}
"""


def test_apply_on_the_embedded_server_takes_over_from_a_versioned_worker_that_left(tmp_path):
    """A versioned worker made itself current on the embedded server's task queue and
    went away: `apply` still runs its runbook, its worker becoming the current build."""
    env = {k: v for k, v in os.environ.items() if k != "QLRF_TEMPORAL_ADDRESS"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    state = tmp_path / "state" / "qlrf-run" / "temporal.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=180)

    assert cli("dev", "--detach").returncode == 0
    worker = subprocess.Popen(
        [EXE, "worker", "--deployment", "fleet-ops", "--build-id", "old-1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = f"127.0.0.1:{json.loads(state.read_text())['port']}"

        async def current() -> str | None:
            client = await connect(Target(address, "default", None, False))
            for _ in range(int(WAIT_SECONDS / 0.3)):
                build = await current_build(client, "fleet-ops")
                if build:
                    return build
                await asyncio.sleep(0.3)
            return None

        assert asyncio.run(current()) == "old-1"
        worker.kill()
        worker.wait(timeout=30)

        path = tmp_path / "one.yaml"
        path.write_text(ONE_STEP)
        applied = cli("apply", str(path), "--format", "json")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert json.loads(applied.stdout)["status"] == "succeeded"
        assert asyncio.run(current()) == default_build_id()
    finally:
        if worker.poll() is None:
            worker.kill()
        cli("dev", "--stop")
