"""`qlrf-run redrive`, on real servers: what succeeded is kept, the rest runs again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from pathlib import Path

import pytest

from runner.local.temporal import launch, terminate
from tests.helpers.cli import qlrf
from tests.helpers.gates import gated_runbook

STEPS = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
inputs:
  ticket: {{type: string, default: none}}
steps:
  - id: prepare
    type: shell
    with: {{script: "echo prepared >> {log}; echo ready"}}
  - id: switch
    type: shell
    needs: [prepare]
    retry: {{max_attempts: 1}}
    with: {{script: "test -f {gate1} && echo switched >> {log}"}}
  - id: verify
    type: shell
    needs: [switch]
    retry: {{max_attempts: 1}}
    with:
      script: |
        test -f {gate2} && echo "verified {{{{ steps.prepare.output.stdout | trim }}}}" >> {log}
"""
FLEET = """\
apiVersion: qlrf/v1
kind: Campaign
name: {name}
steps:
  - id: patch
    type: shell
    foreach: [web-1, web-2, web-3, web-4, web-5, web-6]
    as: host
    max_failures: 1
    concurrency: 6
    retry: {{max_attempts: 1}}
    with: {{script: "test ! -f {dir}/broken-{{{{ host }}}} && echo {{{{ host }}}} >> {log}"}}
"""


def _apply(path: Path, env: dict[str, str], *extra: str) -> dict:
    done = qlrf("apply", str(path), "--format", "json", *extra, env=env, timeout=180)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return json.loads(done.stdout)


def _redrive(run: str, env: dict[str, str], *extra: str) -> dict:
    done = qlrf("redrive", run, "--format", "json", *extra, env=env, timeout=180)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return json.loads(done.stdout)


def _steps(tmp_path: Path) -> tuple[Path, Path]:
    name = f"redrive-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "log"
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        STEPS.format(name=name, log=log, gate1=tmp_path / "gate1", gate2=tmp_path / "gate2")
    )
    return path, log


def _fleet(tmp_path: Path) -> tuple[Path, Path]:
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "log"
    path = tmp_path / f"{name}.yaml"
    path.write_text(FLEET.format(name=name, dir=tmp_path, log=log))
    return path, log


def test_a_redrive_runs_only_what_did_not_succeed(env, tmp_path):
    path, log = _steps(tmp_path)
    first = _apply(path, env)
    assert first["status"] == "failed"
    assert first["steps"]["switch"]["status"] == "failed"
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()

    again = _redrive(first["run_id"], env)
    assert again["status"] == "succeeded", again
    assert again["run_id"] == f"{first['run_id']}.r1"
    assert again["redrive_of"] == first["run_id"]
    # prepare ran once, in the original; its output still reached verify's template
    assert log.read_text().splitlines() == ["prepared", "switched", "verified ready"]
    assert "not run again" in again["steps"]["prepare"]["reason"]

    history = json.loads(qlrf("history", again["run_id"], "--format", "json", env=env).stdout)
    events = [(e["event"], e["step"]) for e in history]
    assert events.index(("step_failed", "switch")) < events.index(("step_succeeded", "switch"))
    assert ("step_kept", "prepare") in events
    bundle = json.loads(qlrf("evidence", again["run_id"], "--format", "json", env=env).stdout)
    assert bundle["run"]["redrive_of"] == first["run_id"]
    assert bundle["redrive_of"]["run"]["run_id"] == first["run_id"]
    assert bundle["redrive_of"]["run"]["status"] == "failed"


def test_from_runs_the_step_and_what_follows_again(env, tmp_path):
    path, log = _steps(tmp_path)
    first = _apply(path, env)
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    again = _redrive(first["run_id"], env, "--from", "prepare")
    assert again["status"] == "succeeded"
    assert log.read_text().splitlines() == ["prepared", "prepared", "switched", "verified ready"]


def test_a_redrive_of_a_redrive(env, tmp_path):
    path, log = _steps(tmp_path)
    first = _apply(path, env)
    (tmp_path / "gate1").touch()
    second = _redrive(first["run_id"], env)
    assert second["status"] == "failed" and second["steps"]["verify"]["status"] == "failed"
    (tmp_path / "gate2").touch()
    # Redriving the first run again goes on from its latest redrive: each run is
    # redriven once, by the next run of its chain (RUN.r1, RUN.r2, ...).
    third = _redrive(first["run_id"], env)
    assert third["status"] == "succeeded"
    assert third["run_id"] == f"{first['run_id']}.r2"
    assert log.read_text().splitlines() == ["prepared", "switched", "verified ready"]
    bundle = json.loads(qlrf("evidence", third["run_id"], "--format", "json", env=env).stdout)
    assert bundle["redrive_of"]["run"]["run_id"] == second["run_id"]
    assert bundle["redrive_of"]["redrive_of"]["run"]["run_id"] == first["run_id"]


def test_a_fan_out_runs_only_the_items_that_failed(env, tmp_path):
    path, log = _fleet(tmp_path)
    for host in ("web-2", "web-5"):
        (tmp_path / f"broken-{host}").touch()
    first = _apply(path, env)
    assert first["status"] == "failed"
    assert sorted(log.read_text().split()) == ["web-1", "web-3", "web-4", "web-6"]
    for host in ("web-2", "web-5"):
        (tmp_path / f"broken-{host}").unlink()

    again = _redrive(first["run_id"], env)
    assert again["status"] == "succeeded", again
    output = again["steps"]["patch"]["output"]
    assert sorted(i["item"] for i in output["items"]) == ["web-2", "web-5"]
    assert output["succeeded"] == 2
    # every host was patched exactly once across both runs
    assert sorted(log.read_text().split()) == [f"web-{n}" for n in range(1, 7)]


def test_a_redrive_from_the_store_when_temporal_forgot_the_run(env, tmp_path):
    """The original's history is gone (here: the redrive talks to another Temporal
    server, which never saw it): its definition, inputs and outcomes come from the
    run store."""
    path, log = _steps(tmp_path)
    # An input that looks like `@file` to the command line is a value like any other.
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"ticket": f"@{tmp_path / 'no-such-file'}"}))
    first = _apply(path, env, "--inputs-file", str(inputs))
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    proc, port, _ = launch(None)
    try:
        elsewhere = {**env, "QLRF_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
        again = _redrive(first["run_id"], elsewhere)
    finally:
        terminate(proc)
    assert again["status"] == "succeeded", again
    assert again["redrive_of"] == first["run_id"]
    assert again["inputs"]["ticket"] == f"@{tmp_path / 'no-such-file'}"
    assert log.read_text().splitlines() == ["prepared", "switched", "verified ready"]


def test_what_cannot_be_redriven_is_refused(env, tmp_path):
    path, _ = _steps(tmp_path)
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    done = _apply(path, env)
    assert done["status"] == "succeeded"
    refused = qlrf("redrive", done["run_id"], env=env)
    assert refused.returncode == 1 and "nothing to redrive" in refused.stderr

    (tmp_path / "gate1").unlink()
    failed = _apply(path, env, "--run-id", f"again-{uuid.uuid4().hex[:6]}")
    unknown = qlrf("redrive", failed["run_id"], "--from", "nope", env=env)
    assert unknown.returncode == 2 and "no step 'nope'" in unknown.stderr

    missing = qlrf("redrive", "no-such-run", env=env)
    assert missing.returncode == 1 and "no run 'no-such-run'" in missing.stderr

    gated = tmp_path / "gated.yaml"
    gated.write_text(gated_runbook(f"gated-{uuid.uuid4().hex[:6]}"))
    started = qlrf("apply", str(gated), "--detach", "--format", "json", env=env)
    rid = json.loads(started.stdout)["run_id"]
    running = qlrf("redrive", rid, env=env)
    assert running.returncode == 1 and "still running" in running.stderr
    for refusal in (refused, unknown, missing, running):
        assert "Traceback" not in refusal.stderr


def test_without_the_store_temporal_s_final_state_says_what_succeeded(env, tmp_path):
    off = {**env, "QLRF_STORE": "off"}
    path, log = _fleet(tmp_path)
    for host in ("web-4", "web-5"):
        (tmp_path / f"broken-{host}").touch()
    first = _apply(path, off)
    assert first["status"] == "failed"
    for host in ("web-4", "web-5"):
        (tmp_path / f"broken-{host}").unlink()
    done = qlrf("redrive", first["run_id"], "--format", "json", env=off, timeout=180)
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    assert [i["item"] for i in again["steps"]["patch"]["output"]["items"]] == ["web-4", "web-5"]
    assert sorted(log.read_text().split()) == [f"web-{n}" for n in range(1, 7)]


@pytest.mark.parametrize(
    "redrive",
    [
        ["prepare"],
        {"steps": {"prepare": "ready"}},
        {"of": "x", "steps": {"no-such-step": None}},
        {"of": "x", "steps": {}, "items": {"prepare": ["a"]}},
        {"of": "x", "steps": "prepare"},
    ],
    ids=["a-list", "no-run-named", "unknown-step", "items-of-a-plain-step", "steps-as-text"],
)
def test_a_malformed_redrive_sent_through_the_plain_api_is_refused(
    temporal_address, tmp_path, redrive
):
    """A client of the Temporal API can put anything in RunInput.redrive: the run
    refuses what is malformed, runs no step, and does not hang."""
    from temporalio.client import Client, WorkflowFailureError

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    path, log = _steps(tmp_path)
    plan = compile_file(path).plan.to_dict()

    async def go() -> dict:
        client = await Client.connect(temporal_address)
        queue = f"forged-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                RunInput(plan, {}, "mallory", redrive=redrive),
                id=queue,
                task_queue=queue,
            )
            with pytest.raises(WorkflowFailureError):  # refused, not hanging
                await asyncio.wait_for(handle.result(), 60)
            return json.loads(json.dumps(await handle.query("state")))

    state = asyncio.run(go())
    assert state["status"] == "failed" and state["error"]["type"] == "RedriveRefused"
    assert "redrive" in state["error"]["message"]
    assert all(s["status"] == "skipped" for s in state["steps"].values())
    assert not log.exists()


def test_a_redrive_keeps_only_what_the_store_says_the_original_did(env, temporal_address, tmp_path):
    """A redrive sent through the plain Temporal API with forged kept steps: the run
    derives what it keeps from the run store, so a step the original never finished
    runs; a redrive of a run of another plan, or of no run, is refused; and a run is
    redriven by one run only, even through the API."""
    from temporalio.client import Client

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    path, log = _steps(tmp_path)
    first = _apply(path, env)  # prepare succeeds; switch waits for gate1 and fails
    plan = compile_file(path).plan.to_dict()
    other = tmp_path / "other.yaml"
    other.write_text(path.read_text().replace("name: redrive-", "name: other-redrive-"))
    other_plan = compile_file(other).plan.to_dict()
    forged = {"of": first["run_id"], "steps": {"switch": "done", "verify": "done"}}

    async def go(run_plan: dict, redrive: dict, wid: str) -> dict:
        client = await Client.connect(temporal_address)
        async with build_worker(client, task_queue=env["QLRF_TASK_QUEUE"]):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                RunInput(run_plan, {}, "mallory", redrive=redrive, record=True),
                id=wid,
                task_queue=env["QLRF_TASK_QUEUE"],
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.result(), 60)
            return json.loads(json.dumps(await handle.query("state")))

    (tmp_path / "gate1").touch()
    state = asyncio.run(go(plan, forged, f"{first['run_id']}.forged"))
    # switch ran again (it failed in the original), and the forged outputs were not kept
    assert state["steps"]["prepare"]["status"] == "succeeded"
    assert "not run again" in (state["steps"]["prepare"]["reason"] or "")
    assert state["steps"]["switch"]["output"] != "done"
    assert log.read_text().splitlines().count("switched") == 1
    again = asyncio.run(go(plan, forged, f"{first['run_id']}.again"))
    assert again["error"]["type"] == "RedriveRefused"
    assert "is redriven by run" in again["error"]["message"]
    for redrive, said in (
        ({"of": "no-such-run"}, "does not exist"),
        ({"of": first["run_id"]}, "ran another plan"),
    ):
        refused = asyncio.run(go(other_plan, redrive, f"probe-{uuid.uuid4().hex[:6]}"))
        assert refused["error"]["type"] == "RedriveRefused", refused["error"]
        assert said in refused["error"]["message"]
        assert all(s["status"] == "skipped" for s in refused["steps"].values())


def test_two_redrives_at_once_start_one_run(env, tmp_path):
    """Two `qlrf-run redrive` of one run at the same time: one starts RUN.r1, the other
    says that the run is being redriven already; the failed step runs once."""
    import subprocess

    from tests.helpers.cli import EXE

    path, log = _steps(tmp_path)
    first = _apply(path, env)
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    full = {**os.environ, **env}
    procs = [
        subprocess.Popen(
            [EXE, "redrive", first["run_id"], "--format", "json"],
            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, _, err in results if code == 1)
    assert "being redriven already" in refused or "is redriven by run" in refused, refused
    assert log.read_text().splitlines().count("switched") == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("inputs", ["a", "list"]),
        ("inputs", {"1": 2, "nested": {"ok": True}, "x": None} | {"": 1}),
        ("plan", {"not": "a plan"}),
        ("plan", "text"),
        ("started_by", 42),
        ("groups", {"ops": "alice"}),
        ("record", "yes"),
        ("definition_text", ["x"]),
    ],
    ids=[
        "inputs-list",
        "inputs-ok",
        "plan-junk",
        "plan-text",
        "started-by-number",
        "groups-text",
        "record-text",
        "definition-list",
    ],
)
def test_a_malformed_run_input_sent_through_the_plain_api_fails_at_once(
    temporal_address, tmp_path, field, value
):
    """Any field of RunInput can be anything through the Temporal API: the run fails
    at once with InvalidRunInput and the reason, and never hangs in its first task."""
    from temporalio.client import Client, WorkflowFailureError

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    path, log = _steps(tmp_path)
    request = RunInput(compile_file(path).plan.to_dict(), {}, "mallory")
    setattr(request, field, value)

    async def go() -> tuple[str, dict]:
        client = await Client.connect(temporal_address)
        queue = f"forged-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(WORKFLOW_TYPE, request, id=queue, task_queue=queue)
            try:
                await asyncio.wait_for(handle.result(), 60)
                outcome = "succeeded"
            except WorkflowFailureError as exc:
                outcome = getattr(exc.cause, "type", "") or str(exc.cause)
            return outcome, await handle.query("state")

    outcome, state = asyncio.run(go())
    if field == "inputs" and isinstance(value, dict):
        # well formed (names are text): the run checks the values against the runbook
        assert state["error"]["type"] == "InvalidInputs", state["error"]
        return
    assert outcome == "InvalidRunInput", outcome
    assert state["status"] == "failed" and field.split("_")[0] in state["error"]["message"]
    assert not log.exists()
