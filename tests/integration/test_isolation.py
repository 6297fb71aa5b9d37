"""Isolation on a real server: what a step's process sees, templates that try to take the
worker, and inputs sent through the plain Temporal API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from runner.secretref import marker

HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: isolation\n"


def test_only_the_listed_variables_reach_a_step(run, monkeypatch):
    """The worker's secrets and cloud credentials stay out of a step's environment;
    QLRF_STEP_ENV_ALLOW passes the names it lists, never a secret's variable."""
    monkeypatch.setenv("QLRF_SECRET_TOKEN", "worker-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
    monkeypatch.setenv("AWS_PROFILE", "ops")
    monkeypatch.setenv("QLRF_STEP_ENV_ALLOW", "AWS_PROFILE,QLRF_SECRET_TOKEN")
    outcome = run(
        HEAD
        + """
steps:
  - id: show
    type: shell
    foreach: [one]
    with:
      env: {OWN: mine}
      script: env -0 | tr '\\0' '\\n' | cut -d= -f1 | sort; echo "{{ item }}"
"""
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    [item] = outcome.step("show")["output"]["items"]
    names = set(item["output"]["stdout"].split()) - {"one"}
    given = {"AWS_PROFILE", "OWN", "PATH", "QLRF_ARG_0", "QLRF_ATTEMPT", "QLRF_ITEM"}
    given |= {"QLRF_RUN", "QLRF_STEP"} | ({"HOME", "LANG", "TZ"} & set(os.environ))
    made_by_bash = {"PWD", "SHLVL", "_"}
    assert given <= names <= given | made_by_bash, names
    assert "QLRF_SECRET_TOKEN" not in names and "AWS_SECRET_ACCESS_KEY" not in names


def test_an_input_holding_a_reference_stays_text(run, monkeypatch):
    """An input that looks like a secret reference is never resolved, in a runbook that
    names no secret; where a template does name one, a forged reference is refused."""
    monkeypatch.setenv("QLRF_SECRET_TOKEN", "worker-secret")
    monkeypatch.setenv("QLRF_SECRET_OTHER", "other-secret")
    outcome = run(
        HEAD
        + """
inputs:
  v: {type: string}
steps:
  - id: plain
    type: shell
    with: {command: [echo, "{{ inputs.v }}"]}
  - id: mixed
    type: shell
    needs: []
    on_failure: continue
    with: {command: [echo, "{{ secrets.TOKEN }} {{ inputs.v }}"]}
""",
        [f"v=ref:{marker('OTHER')}"],  # `--input v=@...` would read a file
    )
    assert outcome.step("plain")["output"]["stdout"].strip() == f"ref:{marker('OTHER')}"
    assert outcome.step("mixed")["error"]["type"] == "TemplateError"
    assert "secret OTHER" in outcome.step("mixed")["error"]["message"]
    assert "other-secret" not in outcome.history_text()


def test_a_modify_cannot_forge_a_reference_either(run, monkeypatch):
    """The same value given at a gate, by modify, stays text too."""
    from tests.helpers.gates import decision, wait_for_gate

    monkeypatch.setenv("QLRF_SECRET_TOKEN", "worker-secret")

    async def modify(handle):
        await wait_for_gate(handle)
        await handle.execute_update(
            "decide", decision("modify", "alice", set={"v": marker("TOKEN")})
        )
        await handle.execute_update("decide", decision("approve", "bob"))

    outcome = run(
        HEAD
        + """
inputs:
  v: {type: string, default: x}
steps:
  - id: review
    type: approval
    with: {message: "go?", modifiable: [v]}
  - id: echo
    type: shell
    with: {command: [echo, "{{ inputs.v }}"]}
""",
        while_running=modify,
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    assert outcome.step("echo")["output"]["stdout"].strip() == marker("TOKEN")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(300)
def test_a_template_bomb_fails_its_step_and_spares_the_worker(temporal_address, tmp_path):
    """`'a' * n` with n = 10**9 and nested loops over long strings, given as inputs: each
    fails its step with TemplateError at once; the worker stays under 1 GB and runs the
    next run as usual."""
    from temporalio.client import Client

    from runner.client import runs
    from runner.client import state as client_state
    from runner.pipeline import compile_file

    path = tmp_path / "bomb.yaml"
    path.write_text(
        HEAD
        + """
inputs:
  n: {type: integer}
  s: {type: string}
steps:
  - id: big
    type: shell
    on_failure: continue
    with: {command: [echo, "{{ 'a' * inputs.n }}"]}
  - id: loops
    type: shell
    needs: []
    on_failure: continue
    with:
      command: [echo, "{% for a in inputs.s %}{% for b in inputs.s %}x{% endfor %}{% endfor %}"]
  - id: fine
    type: shell
    needs: []
    with: {command: [echo, ok]}
"""
    )
    queue = f"bomb-{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("qlrf-run")), "worker", "--task-queue", queue],
        env={**os.environ, "QLRF_TEMPORAL_ADDRESS": temporal_address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def go() -> list[dict]:
            client = await Client.connect(temporal_address)
            states = []
            for inputs in (
                [f"n={10**9}", f"s={'x' * 100000}"],
                ["n=3", "s=ab"],
            ):
                compiled = compile_file(path, inputs)
                handle, _ = await runs.start(
                    client, compiled.plan, compiled.inputs, "tester", task_queue=queue
                )
                await asyncio.wait_for(handle.result(), 120)
                states.append((await client_state.view_of(handle)).to_json())
            return states

        bomb, calm = asyncio.run(go())
        peak = _peak_rss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    print(f"worker peak RSS during the template bombs: {peak:.0f} MB")
    assert bomb["steps"]["big"]["error"]["type"] == "TemplateError"
    assert bomb["steps"]["loops"]["error"]["type"] == "TemplateError"
    assert bomb["steps"]["fine"]["status"] == "succeeded"
    assert calm["status"] == "succeeded"
    assert calm["steps"]["big"]["output"]["stdout"].strip() == "aaa"
    assert peak < 1024


def test_inputs_sent_through_the_plain_api_are_checked_before_any_step(temporal_address, tmp_path):
    """A string given through the Temporal API for an integer input used in bash
    arithmetic: the run fails with InvalidInputs and runs no step."""
    from temporalio.client import Client

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    pwned = tmp_path / "pwned"
    path = tmp_path / "arith.yaml"
    path.write_text(
        HEAD
        + """
inputs:
  n: {type: integer, default: 1}
steps:
  - id: double
    type: shell
    with: {script: 'echo $(( {{ inputs.n }} * 2 ))'}
"""
    )
    plan = compile_file(path).plan.to_dict()

    async def go() -> dict:
        client = await Client.connect(temporal_address)
        queue = f"raw-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                RunInput(plan, {"n": f"QLRF_ATTEMPT[$(touch {pwned})]"}, "mallory"),
                id=queue,
                task_queue=queue,
            )
            with pytest.raises(Exception):  # noqa: B017 (the run fails, as it must)
                await asyncio.wait_for(handle.result(), 60)
            return json.loads(json.dumps(await handle.query("state")))

    state = asyncio.run(go())
    assert state["status"] == "failed" and state["error"]["type"] == "InvalidInputs"
    assert state["steps"]["double"]["status"] == "skipped"
    assert not pwned.exists()
