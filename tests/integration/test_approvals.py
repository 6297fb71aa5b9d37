"""Approval gates on a real dev server: decisions, refusals, quorum, modify, restarts, pending."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client

from runner.app import pending as app_pending
from runner.app.context import Context
from runner.client import runs
from runner.client import state as client_state
from runner.client.connect import Target
from runner.local.temporal import temporal_binary
from runner.pipeline import compile_file
from runner.worker import build_worker
from tests.helpers import shapes, updates
from tests.helpers.cli import qlrf
from tests.helpers.gates import GATE, GATE_HEAD, decision, history_length, wait_for_gate
from tests.helpers.runs import RUN_TIMEOUT_SECONDS
from tests.helpers.waiting import eventually, eventually_async

HEAD = GATE_HEAD


def test_approve_lets_the_run_continue(run):
    """One approval by an allowed person: the gate opens, who and when are recorded."""

    async def approve(handle):
        await wait_for_gate(handle)
        gate = await handle.execute_update("decide", decision("approve", "alice", comment="ok"))
        assert gate["status"] == "approved"

    outcome = run(GATE % {"quorum": 1}, while_running=approve)
    assert outcome.state["status"] == "succeeded"
    output = outcome.step("review")["output"]
    assert output["decision"] == "approved"
    assert [(a["by"], a["comment"]) for a in output["approvals"]] == [("alice", "ok")]


def test_reject_fails_the_step(run):
    """A rejection fails the approval step with ApprovalRejected, naming who and why."""

    async def reject(handle):
        await wait_for_gate(handle)
        await handle.execute_update("decide", decision("reject", "bob", comment="not today"))

    outcome = run(GATE % {"quorum": 1}, while_running=reject)
    assert outcome.state["status"] == "failed"
    error = outcome.step("review")["error"]
    assert error["type"] == "ApprovalRejected" and "bob: not today" in error["message"]
    assert outcome.step("act")["status"] == "skipped"


def test_modify_then_reapprove_changes_later_steps(run):
    """A modify changes the input, clears approvals, waits again; later steps see the change."""

    async def modify(handle):
        await wait_for_gate(handle)
        await handle.execute_update("decide", decision("approve", "alice"))  # quorum is 2
        gate = await handle.execute_update(
            "decide", decision("modify", "bob", set={"batch_size": 5}, comment="smaller")
        )
        assert gate["status"] == "waiting" and gate["approvals"] == []
        assert gate["message"] == "run with batch 5?"
        await handle.execute_update("decide", decision("approve", "alice"))
        await handle.execute_update("decide", decision("approve", "bob"))

    outcome = run(GATE % {"quorum": 2}, while_running=modify)
    assert outcome.state["status"] == "succeeded"
    assert outcome.state["inputs"]["batch_size"] == 5
    assert outcome.step("act")["output"]["stdout"] == "batch=5\n"
    [change] = outcome.step("review")["output"]["modifications"]
    assert change["by"] == "bob" and change["changes"] == {"batch_size": {"from": 1, "to": 5}}


def test_quorum_needs_two_distinct_people(run):
    """With min_approvals 2 the gate waits after one approval and opens after the second."""

    async def two(handle):
        await wait_for_gate(handle)
        first = await handle.execute_update("decide", decision("approve", "alice"))
        assert first["status"] == "waiting"
        second = await handle.execute_update("decide", decision("approve", "bob"))
        assert second["status"] == "approved"

    outcome = run(GATE % {"quorum": 2}, while_running=two)
    assert [a["by"] for a in outcome.step("review")["output"]["approvals"]] == ["alice", "bob"]


def test_refusals_are_immediate_and_write_no_history(run):
    """Each refused Update names its reason, and the history does not grow."""
    refusals: dict[str, str] = {}

    async def refuse(handle):
        from temporalio.client import WorkflowUpdateFailedError

        await wait_for_gate(handle)
        cases = {
            "self-approval": decision("approve", "tester"),
            "not an approver": decision("approve", "mallory"),
            "not modifiable": decision("modify", "alice", set={"region": "us-east-1"}),
            "wrong type": decision("modify", "alice", set={"batch_size": "five"}),
            "unknown gate": {**decision("approve", "alice"), "gate": "nope"},
            "bad decision": decision("maybe", "alice"),
        }
        await handle.execute_update("decide", decision("approve", "alice"))
        cases["double vote"] = decision("approve", "alice")
        for name, payload in cases.items():
            before = await history_length(handle)
            try:
                await handle.execute_update("decide", payload)
            except WorkflowUpdateFailedError as exc:
                refusals[name] = str(exc.cause)
            else:
                raise AssertionError(f"{name} was accepted")
            assert await history_length(handle) == before, f"{name} wrote history"
        await handle.execute_update("decide", decision("approve", "bob"))
        try:
            await handle.execute_update("decide", decision("approve", "tester"))
        except WorkflowUpdateFailedError as exc:
            refusals["not waiting"] = str(exc.cause)

    outcome = run(GATE % {"quorum": 2}, while_running=refuse)
    assert outcome.state["status"] == "succeeded"
    assert "tester started this run and may not approve it" in refusals["self-approval"]
    assert "mallory may not decide gate 'review'" in refusals["not an approver"]
    assert "input 'region' is not modifiable" in refusals["not modifiable"]
    assert "input 'batch_size': expected an integer" in refusals["wrong type"]
    assert "no gate 'nope'" in refusals["unknown gate"]
    assert "approve, reject or modify" in refusals["bad decision"]
    assert "alice has already approved" in refusals["double vote"]
    assert "is not waiting: it is approved" in refusals["not waiting"]


def test_signal_decisions_are_checked_the_same_way(run):
    """A refused signal changes nothing and is recorded as refused; a valid one decides."""

    async def signal(handle):
        await wait_for_gate(handle)
        await handle.signal("decide", decision("approve", "mallory"))

        async def refused_signal() -> dict | None:
            state = await handle.query("state")
            return state if state["gates"][0]["refused"] else None

        state = await eventually_async(refused_signal, "the refused signal is kept", 30)
        [refused] = state["gates"][0]["refused"]
        assert "mallory may not decide" in refused["reason"]
        assert state["gates"][0]["status"] == "waiting"
        await handle.signal("decide", decision("approve", "alice"))

    outcome = run(GATE % {"quorum": 1}, while_running=signal)
    assert outcome.state["status"] == "succeeded"


def test_a_gate_in_one_branch_does_not_hold_the_other(run):
    """While the gate waits, an independent branch runs to the end."""

    async def check_branch(handle):
        await wait_for_gate(handle)

        async def other_done() -> dict | None:
            state = await handle.query("state")
            return state if state["steps"]["other"]["status"] == "succeeded" else None

        state = await eventually_async(other_done, "the other branch succeeds", 30)
        assert state["steps"]["review"]["status"] == "waiting"
        await handle.execute_update("decide", decision("approve", "alice"))

    outcome = run(
        HEAD
        + """
steps:
  - {id: review, type: approval, needs: [], with: {message: go?}}
  - {id: other, type: shell, needs: [], with: {command: ["true"]}}
""",
        while_running=check_branch,
    )
    assert outcome.state["status"] == "succeeded"


def test_gate_keeps_waiting_across_a_worker_restart(temporal_address, tmp_path):
    """The worker stops while the gate waits; a new worker picks the run up after approval."""
    path = tmp_path / "gate.yaml"
    path.write_text(GATE % {"quorum": 1})
    compiled = compile_file(path)

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"test-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handle, _ = await runs.start(
                client,
                compiled.plan,
                compiled.inputs,
                "tester",
                workflow_id=queue,
                task_queue=queue,
            )
            await wait_for_gate(handle)
        # No worker now: the run is durable in Temporal, and the decision waits with it.
        async with build_worker(client, task_queue=queue):
            await wait_for_gate(handle)
            await handle.execute_update("decide", decision("approve", "alice"))
            await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
            return (await client_state.view_of(handle)).to_json()

    state = asyncio.run(go())
    assert state["status"] == "succeeded"


def test_gate_survives_a_killed_worker_process(temporal_address, tmp_path):
    """SIGKILL the only worker while the gate waits; a new worker finishes after approval."""
    import os
    import signal
    import sys

    path = tmp_path / "gate.yaml"
    path.write_text(
        GATE.replace("name: gated", f"name: killed-{uuid.uuid4().hex[:6]}") % {"quorum": 1}
    )
    env = {"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_USER": "tester"}
    exe = str(Path(sys.executable).with_name("qlrf-run"))

    def worker() -> subprocess.Popen:
        return subprocess.Popen(
            [exe, "worker"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def waiting(rid: str) -> bool:
        shown = qlrf("status", rid, "--format", "json", env=env)
        return shown.returncode == 0 and '"waiting"' in shown.stdout

    first = worker()
    try:
        rid = json.loads(
            qlrf("apply", str(path), "--detach", "--no-worker", "--format", "json", env=env).stdout
        )["run_id"]
        eventually(lambda: waiting(rid), "the gate waits")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = worker()
    try:
        approved = qlrf("approve", rid, "review", "--as", "alice", env=env)
        assert approved.returncode == 0, approved.stderr
        assert _ended(rid, env)["status"] == "succeeded"
    finally:
        second.terminate()
        second.wait(timeout=60)


def _ended(rid: str, env: dict[str, str]) -> dict:
    """The run's status JSON once it has ended."""

    def ended() -> dict | None:
        state = json.loads(qlrf("status", rid, "--format", "json", env=env).stdout)
        return state if state["status"] != "running" else None

    found: dict = eventually(ended, f"run {rid} ends")
    return found


def test_pending_lists_the_gates_of_three_runs(temporal_address, tmp_path):
    """`pending` finds every waiting gate through the QlrfWaiting search attribute."""
    path = tmp_path / "gate.yaml"
    path.write_text(GATE % {"quorum": 1})
    compiled = compile_file(path)

    async def go():
        client = await Client.connect(temporal_address)
        queue = f"test-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handles = []
            for i in range(3):
                handle, _ = await runs.start(
                    client,
                    compiled.plan,
                    compiled.inputs,
                    "tester",
                    workflow_id=f"{queue}-{i}",
                    task_queue=queue,
                )
                handles.append(handle)
            for handle in handles:
                await wait_for_gate(handle)
            ctx = Context(client, Target(temporal_address, "default", None, False))

            async def three() -> list[dict] | None:
                found = [r.to_json() for r in await app_pending.pending(ctx)]
                rows = [r for r in found if r["run_id"].startswith(queue)]
                return rows if len(rows) == 3 else None

            rows = await eventually_async(three, "pending lists the three gates", 30, poll=0.3)
            for handle in handles:
                await handle.execute_update("decide", decision("approve", "alice"))
                await handle.result()
            return rows

    rows = asyncio.run(go())
    assert sorted(r["run_id"].rsplit("-", 1)[1] for r in rows) == ["0", "1", "2"]
    row = rows[0]
    assert row["gate"] == "review" and row["message"] == "run with batch 1?"
    shapes.check(rows, shapes.PENDING)


def test_groups_are_resolved_at_start(run, tmp_path, monkeypatch):
    """group:NAME admits its members as of the run's start; others are refused."""
    groups = tmp_path / "groups.yaml"
    groups.write_text("sre: [carol, dave]\n")
    monkeypatch.setenv("QLRF_GROUPS_FILE", str(groups))

    async def decide(handle):
        from temporalio.client import WorkflowUpdateFailedError

        await wait_for_gate(handle)
        try:
            await handle.execute_update("decide", decision("approve", "erin"))
            raise AssertionError("erin is not in sre")
        except WorkflowUpdateFailedError as exc:
            assert "erin may not decide" in str(exc.cause)
        await handle.execute_update("decide", decision("approve", "dave"))

    outcome = run(
        HEAD
        + """
steps:
  - {id: review, type: approval, with: {message: go?, approvers: ["group:sre"]}}
""",
        while_running=decide,
    )
    assert outcome.state["status"] == "succeeded"


def test_unknown_group_is_refused_before_the_run_starts(run, tmp_path, monkeypatch):
    """A gate naming a group missing from the groups file stops apply with a clear error."""
    import pytest

    from runner.errors import QlrfError

    groups = tmp_path / "groups.yaml"
    groups.write_text("sre: [carol]\n")
    monkeypatch.setenv("QLRF_GROUPS_FILE", str(groups))
    with pytest.raises(QlrfError, match="group\\(s\\) dba are not defined in"):
        run(
            HEAD + "steps:\n  - {id: review, type: approval, "
            "with: {message: go?, approvers: ['group:dba']}}\n"
        )


def test_gate_notification_names_the_approve_command(run):
    """When a gate opens, the notification carries message, deadline and the exact command."""

    sent: list[dict] = []

    @activity.defn(name="gate_notify")
    async def capture(request: dict) -> dict:
        sent.append(request)
        return {"delivered": ["test"]}

    async def approve(handle):
        await wait_for_gate(handle)
        await handle.execute_update("decide", decision("approve", "alice"))

    outcome = run(GATE % {"quorum": 1}, while_running=approve, overrides={"gate_notify": capture})
    [note] = sent
    assert note["command"] == f"qlrf-run approve {outcome.workflow_id} review"
    assert note["message"] == "run with batch 1?" and note["deadline"]


def test_a_modify_notifies_the_approvers_again(run):
    """The gate waits again after a modify, and its approvers hear of it again."""
    sent: list[dict[str, Any]] = []

    @activity.defn(name="gate_notify")
    async def capture(request: dict[str, Any]) -> dict[str, Any]:
        sent.append(request)
        return {"delivered": ["test"]}

    async def modify_then_approve(handle):
        await wait_for_gate(handle)
        await handle.execute_update("decide", decision("modify", "bob", set={"batch_size": 4}))
        await handle.execute_update("decide", decision("approve", "alice"))

    outcome = run(
        GATE % {"quorum": 1}, while_running=modify_then_approve, overrides={"gate_notify": capture}
    )
    assert outcome.state["status"] == "succeeded"
    assert [s["message"] for s in sent] == ["run with batch 1?", "run with batch 4?"]


def test_the_plain_temporal_cli_can_decide(run, temporal_address):
    """`temporal workflow update execute --name decide` works as documented in the README."""

    async def approve_with_cli(handle):
        await wait_for_gate(handle)
        payload = json.dumps(decision("approve", "alice", comment="from the temporal CLI"))
        result = await asyncio.to_thread(
            subprocess.run,
            [
                temporal_binary(),
                "workflow",
                "update",
                "execute",
                "--address",
                temporal_address,
                "--workflow-id",
                handle.id,
                "--name",
                "decide",
                "--input",
                payload,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    outcome = run(GATE % {"quorum": 1}, while_running=approve_with_cli)
    assert outcome.state["status"] == "succeeded"
    assert outcome.step("review")["output"]["approvals"][0]["comment"] == "from the temporal CLI"


def test_cli_approve_reject_modify_and_pending(temporal_address, tmp_path):
    """approve/modify/reject exit 0 when accepted and 1 with the reason when refused."""

    path = tmp_path / "gate.yaml"
    path.write_text(
        GATE.replace("name: gated", f"name: gated-{uuid.uuid4().hex[:6]}") % {"quorum": 2}
    )
    env = {"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_USER": "tester"}
    started = qlrf("apply", str(path), "--detach", "--format", "json", env=env)
    rid = json.loads(started.stdout)["run_id"]
    worker = subprocess.Popen(
        [str(Path(__import__("sys").executable).with_name("qlrf-run")), "worker"],
        env={**__import__("os").environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def shown_waiting() -> str | None:
            shown = qlrf("status", rid, env=env).stdout
            return shown if "waiting" in shown else None

        shown = eventually(shown_waiting, "status shows the gate waiting")
        assert f"qlrf-run approve {rid} review" in shown
        refused = qlrf("approve", rid, "review", env=env)  # tester started it
        assert refused.returncode == 1 and "may not approve it" in refused.stderr
        modified = qlrf("modify", rid, "review", "--set", "batch_size=3", "--as", "bob", env=env)
        assert modified.returncode == 0, modified.stderr
        bad = qlrf("modify", rid, "review", "--set", "batch_size=x", "--as", "bob", env=env)
        assert bad.returncode == 2 and "not an integer" in bad.stderr
        approved = qlrf("approve", rid, "review", "--as", "alice", env=env)
        assert approved.returncode == 0 and "(1/2 approvals)" in approved.stdout

        def listed() -> bool:  # visibility is eventually consistent (about a second)
            rows = json.loads(qlrf("pending", "--format", "json", env=env).stdout)
            return any(r["run_id"] == rid and len(r["approvals"]) == 1 for r in rows)

        eventually(listed, "pending lists the gate", 30, poll=0.3)
        rejected = qlrf("reject", rid, "review", "--as", "bob", "-c", "changed my mind", env=env)
        assert rejected.returncode == 0
        state = _ended(rid, env)
        assert state["status"] == "failed" and state["inputs"]["batch_size"] == 3
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def test_ai_task_example_end_to_end(run, tmp_path):
    """The seed's flow: pending shows the gate; modify, approve, run by type, audit record."""
    audit = tmp_path / "audit.jsonl"

    async def operator(handle):
        state = await wait_for_gate(handle)
        assert "2 tasks, batch size 1" in state["gates"][0]["message"]
        only_restart = [{"type": "restart", "target": "payments-api"}]
        await handle.execute_update(
            "decide",
            decision(
                "modify", "bob", set={"tasks": only_restart, "batch_size": 2}, comment="no scaling"
            ),
        )
        await handle.execute_update("decide", decision("approve", "alice", comment="fine"))

    text = (Path(__file__).resolve().parents[2] / "examples" / "ai-task-approval.yaml").read_text()
    outcome = run(text, [f"audit_log={audit}"], while_running=operator)
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    assert outcome.step("restart")["output"]["stdout"] == "restarting payments-api (batch 2)\n"
    assert outcome.step("scale")["status"] == "skipped", "the modify removed the scale task"
    assert outcome.result == {"decision": "approved", "approved_by": ["alice"]}
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["decision"] == "approved" and record["approvals"][0]["by"] == "alice"
    assert record["modifications"][0]["changes"]["batch_size"] == {"from": 1, "to": 2}


def test_apply_in_a_terminal_offers_to_decide(temporal_address, tmp_path):
    """With stdin a terminal, apply asks at the gate; answering 'a' approves and the run ends."""
    import os
    import pty
    import select
    import sys

    path = tmp_path / "gate.yaml"
    path.write_text(
        HEAD.replace("name: gated", f"name: prompt-{uuid.uuid4().hex[:6]}")
        + """
steps:
  - {id: review, type: approval, with: {message: ship it?, allow_self_approval: true}}
  - {id: ship, type: shell, with: {command: [echo, shipped]}}
"""
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("qlrf-run")), "apply", str(path), "--as", "alice"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "QLRF_TEMPORAL_ADDRESS": temporal_address},
    )
    os.close(slave)
    seen = ""
    try:
        # Raw reads: a buffered readline() could hold lines that select() no longer sees.
        assert proc.stdout is not None
        fd = proc.stdout.fileno()

        def asked() -> bool:
            nonlocal seen
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                seen += os.read(fd, 65536).decode(errors="replace")
            return "decide gate review as alice?" in seen

        eventually(asked, lambda: f"apply asks about the gate; it printed {seen!r}", poll=0)
        os.write(master, b"a\n")
        rest = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, seen + rest
    assert "approve accepted: gate review is approved" in rest
    assert "succeeded" in rest


def test_deciding_without_a_worker_says_so(temporal_address, tmp_path, monkeypatch):
    """approve with no worker running ends with advice instead of waiting forever."""
    path = tmp_path / "gate.yaml"
    path.write_text(
        GATE.replace("name: gated", f"name: noworker-{uuid.uuid4().hex[:6]}") % {"quorum": 1}
    )
    env = {"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_USER": "tester"}
    rid = json.loads(
        qlrf("apply", str(path), "--detach", "--no-worker", "--format", "json", env=env).stdout
    )["run_id"]

    async def go():
        client = await Client.connect(temporal_address)
        result = await updates.update(client, rid, "decide", decision("approve", "alice"))
        await client.get_workflow_handle(rid).terminate("test finished")
        return result

    accepted, reason = asyncio.run(go())
    assert not accepted and "start one with `qlrf-run worker`" in reason
