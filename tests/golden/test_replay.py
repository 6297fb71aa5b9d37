"""Committed histories of the examples replay against today's interpreter.

A change to RunbookWorkflow that would break a run in flight fails here. Guard a
deliberate behaviour change with workflow.patched(), then re-record with
tests/golden/record.py.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runner.contract import lock_workflow_id
from runner.engine.interpreter import RunbookWorkflow
from runner.worker import WORKFLOWS, sandboxed_runner, workflow_runner
from tests.helpers.runs import decoded_history

HERE = Path(__file__).resolve().parent
HISTORIES = sorted(HERE.glob("*.history.json"))


def test_there_are_golden_histories():
    """The drill, the compensating failover and the approval flow are recorded."""
    assert {p.name.split(".")[0] for p in HISTORIES} >= {
        "drill",
        "failover-rollback",
        "ai-task-approval",
        "patch-campaign",
    }


def test_scenarios_are_recorded():
    """Cancels, trigger rules after a failure, a run timeout, a failed canary and live
    control (record_scenarios.py), as the engine runs them now and as it ran them before
    the rules of qlrf-engine-2 (those runs replay with the rules they started with)."""
    scenarios = {p.stem for p in (HERE / "runbooks").glob("*.yaml")}
    before = {p.name.split(".")[0] for p in HISTORIES if ".before-engine." in p.name}
    now = {p.name.split(".")[0] for p in HISTORIES if p.name.count(".") == 2}
    assert before >= scenarios and now >= scenarios


BEFORE_ENGINE_2 = (".before-engine.", ".before-gates.", ".before-store.")


def test_new_runs_carry_the_markers_and_old_ones_do_not():
    """Runs started now record the qlrf-engine-2 and qlrf-live-picture patch markers; the
    older histories, which replay as they ran, lack the markers of what came after."""
    for path in HISTORIES:
        if ".batch-" in path.name or ".qlrf-lock." in path.name:
            continue
        text = decoded_history(path.read_text())
        engine_2 = not any(tag in path.name for tag in BEFORE_ENGINE_2)
        assert ("qlrf-engine-2" in text) == engine_2, path.name
        # Failed runs of the release before outputs on failure had the live picture.
        live = ".before-" not in path.name or ".before-outputs." in path.name
        assert ("qlrf-live-picture" in text) == live, path.name


def test_a_failed_run_of_now_keeps_its_outputs_and_one_of_before_did_not():
    """failover-rollback fails: recorded now, it carries the qlrf-outputs-on-failure
    marker; as the previous release ran it, it does not (and replays without outputs)."""
    now = decoded_history((HERE / "failover-rollback.history.json").read_text())
    before = decoded_history((HERE / "failover-rollback.before-outputs.history.json").read_text())
    assert "qlrf-outputs-on-failure" in now
    assert "qlrf-outputs-on-failure" not in before


def test_runs_of_the_last_release_are_kept():
    """Every scenario as the previous release ran it (before runs published their
    live picture), replayed below like the others."""
    now = {p.name.split(".")[0] for p in HISTORIES if p.name.count(".") == 2}
    before = {p.name.split(".")[0] for p in HISTORIES if ".before-live." in p.name}
    assert before == now


def workflow_id_of(path: Path) -> str:
    """The recorders name a run NAME[.VERSION], a fan-out batch of it
    NAME[.VERSION].batch-STEP-WAVE-N, a redrive NAME.rN and a lock KEY.qlrf-lock; the
    workflow id is NAME, NAME.STEP.WAVE.N, NAME.rN or qlrf-lock:KEY."""
    parts = path.name.removesuffix(".history.json").split(".")
    name, batch = parts[0], parts[-1]
    if batch == "qlrf-lock":
        return lock_workflow_id(name)  # KEY.qlrf-lock: the lock's own workflow
    if batch.startswith("batch-"):
        return f"{name}.{batch.removeprefix('batch-').replace('-', '.')}"
    redrives = [p for p in parts[1:] if re.fullmatch(r"r\d+", p)]
    return ".".join([name, *redrives])


def test_a_redrive_is_recorded_and_keeps_its_first_step():
    """record_redrive.py: the redrive ran the failed step and the one after it; the step
    that succeeded before was kept, so no activity of it is in the history."""
    text = decoded_history((HERE / "redrive.r1.history.json").read_text())
    assert "step:switch" in text
    assert "step:prepare" not in text
    assert workflow_id_of(HERE / "redrive.r1.history.json") == "redrive.r1"


def test_fanout_batches_are_recorded():
    """The patch campaign's run and each of its three waves' batches (child runs)."""
    batches = [p.name for p in HISTORIES if p.name.startswith("patch-campaign.batch-")]
    assert sorted(workflow_id_of(HERE / b) for b in batches) == [
        "patch-campaign.patch.canary.1",
        "patch-campaign.patch.fleet.1",
        "patch-campaign.patch.staged.1",
    ]


@pytest.mark.parametrize("sandboxed", [False, True], ids=["default-runner", "sandbox"])
@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.name.split(".")[0])
def test_history_replays(path, sandboxed):
    """Replaying raises no non-determinism error, in the worker's runner and in the sandbox.

    The sandbox fails on a clock, random source or I/O call in the interpreter, which
    runs unsandboxed in production for speed (runner/worker.py).
    """
    history = WorkflowHistory.from_json(workflow_id_of(path), path.read_text())
    runner = sandboxed_runner() if sandboxed else workflow_runner()
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=runner)
    result = asyncio.run(replayer.replay_workflow(history))
    assert result.replay_failure is None, result.replay_failure


def test_replay_detects_a_history_that_does_not_match():
    """The check can fail: a history whose activity ids differ from the plan's is caught."""
    text = (HERE / "drill.history.json").read_text()
    assert '"step:provision"' in text
    tampered = text.replace('"step:provision"', '"step:something-else"')
    history = WorkflowHistory.from_json("drill", tampered)
    replayer = Replayer(workflows=[RunbookWorkflow], workflow_runner=workflow_runner())
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert result.replay_failure is not None


def test_runs_sharing_a_lock_are_recorded():
    """record_locks.py: a run holding a lock, a run whose step waited for it, and the lock.
    The step's run was told whom it waited for, then granted the key, and gave it back."""
    step = decoded_history((HERE / "locked-step.locks.history.json").read_text())
    assert "lock_request" in step and '"status":"waiting"' in step.replace(" ", "")
    assert '"status":"granted"' in step.replace(" ", "")
    lock = decoded_history((HERE / "golden.qlrf-lock.history.json").read_text())
    assert lock.count("lock_watch") >= 2 and "locked-run" in lock and "locked-step" in lock
    assert workflow_id_of(HERE / "golden.qlrf-lock.history.json") == "qlrf-lock:golden"


def test_the_patch_campaign_runs_over_ssh_and_names_hosts():
    """record.py: the patch campaign on 20 test hosts over ssh; its items are inventory
    entries, named by their `name` (the qlrf-item-names marker), in its batches too."""
    run = decoded_history((HERE / "patch-campaign.history.json").read_text())
    assert "qlrf-item-names" in run and '"type":"ssh"' in run.replace(" ", "")
    batch = decoded_history((HERE / "patch-campaign.batch-patch-fleet-1.history.json").read_text())
    assert '"key":"host-20"' in batch.replace(" ", "")


def test_a_signed_run_is_recorded():
    """record_signed.py: a run in signed mode took its trust snapshot first, refused a
    forged signal, and took bob's signed decision and controls."""
    text = decoded_history((HERE / "signed-approval.trust.history.json").read_text())
    assert "qlrf-trust" in text and "trust_snapshot" in text
    assert text.count('"nonce"') >= 4  # the start, two controls and the decision
