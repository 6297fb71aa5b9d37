"""Cancellation, and each way a run could hang in RUNNING failing clearly instead."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from tests.helpers.processes import running
from tests.helpers.runs import RUN_TIMEOUT_SECONDS, wait_for_step
from tests.helpers.waiting import eventually, eventually_async

HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: failures\n"


async def _wait_for_lines(path: Path, count: int) -> list[str]:
    def lines() -> list[str] | None:
        found = path.read_text().split() if path.exists() else []
        return found if len(found) >= count else None

    found: list[str] = await eventually_async(lines, f"{count} lines in {path}", poll=0.05)
    return found


def test_cancel_runs_compensation_and_finally_and_leaves_no_process(run, tmp_path):
    """Cancelling a run kills the step's whole process group, undoes, and runs finally."""
    pids, log = tmp_path / "pids", tmp_path / "log"
    marker = f"cancelled-{uuid.uuid4().hex}"
    duration = f"300.{uuid.uuid4().int % 10**9}"  # marks the sleep as this test's

    async def cancel_when_started(handle):
        await _wait_for_lines(pids, 2)
        await handle.cancel()

    outcome = run(
        HEAD
        + f"""
steps:
  - id: setup
    type: shell
    with: {{command: ["true"]}}
    compensate: {{type: shell, with: {{script: 'echo undo-setup >> {log}'}}}}
  - id: long
    type: shell
    timeout: {{start_to_close: 10m, heartbeat: 2s}}
    with:
      script: |
        # {marker}
        sleep {duration} &
        echo $$ $! >> {pids}
        wait
finally:
  - id: report
    type: shell
    with: {{script: 'echo finally >> {log}'}}
""",
        while_running=cancel_when_started,
    )
    assert outcome.state["status"] == "cancelled"
    assert outcome.step("long")["status"] == "cancelled"
    assert log.read_text().split() == ["undo-setup", "finally"]
    assert len(pids.read_text().split()) == 2  # the step's bash and its sleep did run
    eventually(
        lambda: not running(marker) and not running(duration), "no orphan process", 10, poll=0.05
    )


def test_bad_template_at_run_time_fails_the_step(run):
    """A template that only fails with real values fails the run with TemplateError."""
    outcome = run(
        HEAD
        + """
inputs:
  settings: {type: object, default: {}}
steps:
  - id: use
    type: shell
    with: {command: [echo, "{{ inputs.settings.region.name }}"]}
"""
    )
    assert outcome.state["status"] == "failed"
    assert outcome.step("use")["error"]["type"] == "TemplateError"
    assert "region" in outcome.step("use")["error"]["message"]


def test_oversized_step_output_fails_without_retrying(run):
    """Output over the payload limit is PayloadsTooLarge, never retried."""
    outcome = run(
        HEAD
        + """
steps:
  - id: big
    type: shell
    retry: {max_attempts: 3, initial_interval: 100ms}
    with:
      command: [python3, -c, "import json; print(json.dumps(['x' * 100] * 20000))"]
      parse: json
"""
    )
    assert outcome.state["status"] == "failed"
    assert outcome.step("big")["error"]["type"] == "PayloadsTooLarge"
    assert outcome.step("big")["attempts"] == 1


def test_oversized_outputs_or_parameters_fail_the_run(run):
    """Run outputs or rendered parameters over the payload limit, each value within the
    template budget, fail clearly instead of hanging; one value over the budget fails
    its step with TemplateError."""
    part = "\"{{ 'x' * 250000 }}\""
    outputs = "".join(f"  big{i}: \"{{{{ 'y' * 250000 }}}}\"\n" for i in range(7))
    outcome = run(
        HEAD
        + f"""
inputs:
  n: {{type: integer, default: 2000000}}
steps:
  - {{id: a, type: shell, on_failure: continue, with: {{command: [echo, {", ".join([part] * 7)}]}}}}
  - id: b
    type: shell
    needs: []
    on_failure: continue
    with: {{command: [echo, "{{{{ 'x' * inputs.n }}}}"]}}
outputs:
{outputs}"""
    )
    assert outcome.step("a")["error"]["type"] == "PayloadsTooLarge"
    assert outcome.step("b")["error"]["type"] == "TemplateError"
    assert "over its budget" in outcome.step("b")["error"]["message"]
    assert outcome.state["status"] == "failed"
    assert outcome.state["error"]["type"] == "OutputsTooLarge"


def test_missing_activity_timeout_fails_instead_of_hanging(temporal_address, tmp_path):
    """A plan node without start_to_close or schedule_to_close fails with InvalidPlan."""
    from temporalio.client import Client

    from runner.client import state as client_state
    from runner.contract import RunInput
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    path = tmp_path / "r.yaml"
    path.write_text(HEAD + "steps:\n  - {id: a, type: shell, with: {command: ['true']}}\n")
    compiled = compile_file(path)
    plan = compiled.plan.to_dict()
    plan["nodes"][0]["timeouts"] = {}

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"test-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handle: Any = await client.start_workflow(
                "qlrf.Runbook", RunInput(plan, {}, "tester"), id=queue, task_queue=queue
            )
            try:
                await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
            except TimeoutError:
                raise
            except Exception:
                pass
            return (await client_state.view_of(handle)).to_json()

    state = asyncio.run(go())
    assert state["status"] == "failed"
    assert state["steps"]["a"]["error"]["type"] == "InvalidPlan"


def test_cancel_stops_an_always_step_started_after_a_failure(run):
    """After a failure, an `always` step still starts; a cancel then stops it too."""

    async def cancel_when_cleanup_runs(handle):
        await wait_for_step(handle, "cleanup")
        await handle.cancel()

    outcome = run(
        HEAD
        + """
steps:
  - {id: broken, type: assert, with: {that: "{{ false }}"}}
  - {id: cleanup, type: sleep, trigger_rule: always, with: {duration: 1h}}
""",
        while_running=cancel_when_cleanup_runs,
    )
    assert outcome.state["status"] == "cancelled"
    assert outcome.step("broken")["status"] == "failed"
    assert outcome.step("cleanup")["status"] == "cancelled"
