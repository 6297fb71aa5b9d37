"""Failure semantics on a real server: trigger rules after a failure, cancelled runs,
compensations and every attempt in the run store, attempts lost with their worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from typing import Any

import pytest

from runner.store.db import open_store
from runner.store.evidence import build
from runner.store.records import events, find_run, history
from tests.helpers.cli import ROOT, worker_process
from tests.helpers.processes import running
from tests.helpers.runs import RUN_TIMEOUT_SECONDS, wait_for_step
from tests.helpers.waiting import eventually_async

RUNBOOKS = ROOT / "tests" / "golden" / "runbooks"


def _stored(
    postgres_uri: str, workflow_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The run's history rows, its raw step_events rows and its evidence bundle."""

    async def go() -> tuple[list[Any], list[dict[str, Any]], dict[str, Any]]:
        pool = await open_store(postgres_uri)
        try:
            rows = await history(pool, workflow_id)
            found = await find_run(pool, workflow_id)
            assert found is not None and rows is not None
            steps, audit = await events(pool, found["run_id"])
            return rows, steps, build(found, steps, audit)
        finally:
            await pool.close()

    return asyncio.run(go())


def _statuses(state: dict[str, Any]) -> dict[str, str]:
    return {sid: step["status"] for sid, step in state["steps"].items()}


def test_after_a_failure_all_done_one_failed_and_always_steps_run(run):
    """A failing step: running steps are cancelled, all_succeeded dependents skipped, and
    the cleanup steps written with all_done, one_failed and always run."""
    outcome = run((RUNBOOKS / "failure-rules.yaml").read_text())
    assert outcome.state["status"] == "failed"
    assert outcome.state["error"]["step"] == "broken"
    assert _statuses(outcome.state) == {
        "setup": "succeeded",
        "slow": "cancelled",
        "broken": "failed",
        "next": "skipped",
        "on-fail": "succeeded",
        "all-done": "succeeded",
        "always": "succeeded",
        "report": "succeeded",
    }
    assert outcome.step("next")["reason"] == "the run is failing"
    assert outcome.step("setup")["compensation"]["status"] == "succeeded"


@pytest.mark.parametrize("name", ["cancel-midway", "cancel-midway-timed"])
def test_a_cancelled_run_leaves_no_step_pending(run, name):
    """Cancelled mid-run, with or without a run timeout: every step ends; the ones that
    will never run are skipped, `always` steps and finally still run."""

    async def cancel_when_long_runs(handle):
        await wait_for_step(handle, "long")
        await handle.cancel()

    outcome = run((RUNBOOKS / f"{name}.yaml").read_text(), while_running=cancel_when_long_runs)
    assert outcome.state["status"] == "cancelled"
    assert _statuses(outcome.state) == {
        "first": "succeeded",
        "long": "cancelled",
        "after": "skipped",
        "cleanup": "succeeded",
        "report": "succeeded",
    }
    assert outcome.step("after")["reason"] == "the run was cancelled"
    assert outcome.step("first")["compensation"]["status"] == "succeeded"


def test_compensations_and_every_attempt_reach_the_store_and_evidence(run, postgres_uri, tmp_path):
    """Each attempt of a step and of a compensation is a row with its own times; history
    and the evidence bundle show the compensation."""
    marks = tmp_path / "undo-attempts"
    outcome = run(
        f"""
apiVersion: qlrf/v1
kind: Runbook
name: attempts
steps:
  - id: flaky
    type: shell
    retry: {{max_attempts: 3, initial_interval: 100ms}}
    with: {{script: 'sleep 0.3; test "$QLRF_ATTEMPT" -ge 3'}}
    compensate:
      type: shell
      retry: {{max_attempts: 3, initial_interval: 100ms}}
      with: {{script: 'echo "$QLRF_ATTEMPT" >> {marks}; test "$QLRF_ATTEMPT" -ge 2'}}
  - {{id: boom, type: assert, with: {{that: "{{{{ false }}}}"}}}}
"""
    )
    assert outcome.state["status"] == "failed"
    assert marks.read_text().split() == ["1", "2"]
    rows, raw, bundle = _stored(postgres_uri, outcome.workflow_id)
    flaky = [r for r in rows if r["step"] == "flaky" and r["event"].startswith("step_")]
    assert [(r["event"], r["attempt"]) for r in flaky] == [
        ("step_started", 1),
        ("step_failed", 1),
        ("step_failed", 2),
        ("step_succeeded", 3),
    ]
    ends = [r for r in raw if r["step"] == "flaky" and r["status"] in ("failed", "succeeded")]
    bounds = [(r["started_at"], r["finished_at"]) for r in ends]
    assert [r["attempt"] for r in ends] == [1, 2, 3]
    assert all(start and end and start < end for start, end in bounds), bounds
    assert bounds[0][1] <= bounds[1][0] and bounds[1][1] <= bounds[2][0], (
        "each attempt has its own times, one after the other"
    )
    undo = [(r["event"], r["attempt"]) for r in rows if r["event"].startswith("compensation_")]
    assert undo == [
        ("compensation_started", 1),
        ("compensation_failed", 1),
        ("compensation_succeeded", 2),
    ]
    assert [(c["step"], c["status"], c["attempt"]) for c in bundle["compensations"]] == [
        ("flaky", "started", 1),
        ("flaky", "failed", 1),
        ("flaky", "succeeded", 2),
    ]
    step = next(s for s in bundle["steps"] if s["id"] == "flaky")
    assert (step["status"], step["attempts"]) == ("succeeded", 3)


def test_an_attempt_lost_with_its_worker_is_recorded_as_worker_lost(
    temporal_address, postgres_uri, tmp_path
):
    """SIGKILL the worker while attempt 1 runs: attempt 2 runs on another worker, and the
    store records attempt 1 as failed with WorkerLost."""
    from temporalio.client import Client

    from runner.client import runs
    from runner.client import state as client_state
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    started, pids = tmp_path / "started", tmp_path / "pids"
    duration = f"120.{uuid.uuid4().int % 10**9}"  # marks attempt 1's sleep as this test's
    path = tmp_path / "lost.yaml"
    path.write_text(
        f"""
apiVersion: qlrf/v1
kind: Runbook
name: lost-{uuid.uuid4().hex[:6]}
steps:
  - id: work
    type: shell
    timeout: {{start_to_close: 5m, heartbeat: 2s}}
    retry: {{max_attempts: 3, initial_interval: 100ms}}
    with:
      script: |
        echo "$QLRF_ATTEMPT" >> {started}
        echo $$ >> {pids}
        if [ "$QLRF_ATTEMPT" = 1 ]; then sleep {duration} & echo $! >> {pids}; wait; fi
"""
    )
    queue = f"lost-{uuid.uuid4()}"
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": postgres_uri,
    }
    first = worker_process(env, "--task-queue", queue)

    async def go() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        compiled = compile_file(path, [])
        handle, _ = await runs.start(
            client, compiled.plan, compiled.inputs, "tester", task_queue=queue
        )
        await eventually_async(
            lambda: started.exists() and started.read_text().split(), "attempt 1 starts", poll=0.05
        )
        # The server holds who attempt 1 is.
        await eventually_async(lambda: _heartbeated(handle), "attempt 1 heartbeats", poll=0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        # The worker's guardian kills attempt 1's processes at once, before attempt 2.
        assert len(pids.read_text().split()) == 2  # the step's bash, and the sleep it started
        gone_by = time.monotonic() + 5
        while running(duration):
            assert time.monotonic() < gone_by, "attempt 1 outlived its worker"
            await asyncio.sleep(0.05)
        async with build_worker(client, task_queue=queue):
            await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
            return (await client_state.view_of(handle)).to_json()

    try:
        state = asyncio.run(go())
    finally:
        if first.poll() is None:
            first.kill()
        for pid in running(duration):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert state["status"] == "succeeded"
    assert state["steps"]["work"]["attempts"] == 2
    rows, raw_rows, _ = _stored(postgres_uri, state["workflow_id"])
    lost = [r for r in rows if r["step"] == "work" and r["event"] == "step_failed"]
    assert [(r["attempt"], r["detail"]["type"]) for r in lost] == [(1, "WorkerLost")]
    assert "worker stopped answering" in lost[0]["detail"]["message"]
    raw = [r for r in raw_rows if r["step"] == "work" and r["status"] == "failed"]
    assert raw[0]["started_at"] is not None, "the lost attempt keeps its start"


async def _heartbeated(handle: Any) -> bool:
    description = await handle.describe()
    pending = description.raw_description.pending_activities
    return any(a.HasField("heartbeat_details") for a in pending)


def test_a_run_timeout_reaches_a_running_shell_step_within_seconds(run):
    """With the shell step's default heartbeat timeout (30 s), the run's timeout still
    stops the step within 10 s: the worker sends heartbeats at least every 5 s."""
    outcome = run(
        """
apiVersion: qlrf/v1
kind: Runbook
name: quick-timeout
timeout: 2s
steps:
  - {id: long, type: shell, with: {command: [sleep, "120"]}}
"""
    )
    assert outcome.state["status"] == "timed_out"
    assert outcome.step("long")["status"] == "cancelled"
    history = json.loads(outcome.history_json)["events"]

    def at(kind: str) -> float:
        from datetime import datetime

        event = next(e for e in history if e["eventType"] == kind)
        return datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).timestamp()

    fired = at("EVENT_TYPE_TIMER_FIRED")
    stopped = at("EVENT_TYPE_ACTIVITY_TASK_CANCELED")
    assert stopped - fired <= 10, f"the step stopped {stopped - fired:.1f} s after the timeout"
