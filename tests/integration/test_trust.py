"""Signed mode on real servers: real keys from ssh-keygen, a worker with a trust file,
forged and replayed actions sent through the plain Temporal API and through the CLI,
and evidence bundles checked against tampering in the bundle and in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from runner.client import runs
from runner.client import state as client_state
from runner.contract import WORKFLOW_TYPE, RunInput
from runner.pipeline import compile_file
from runner.times import iso
from runner.trust import claims
from runner.worker import build_worker
from tests.helpers import updates
from tests.helpers.cli import EXE, qlrf
from tests.helpers.gates import wait_for_gate
from tests.helpers.runs import write_runbook
from tests.helpers.waiting import eventually

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
inputs:
  batch_size: {{type: integer, default: 1}}
steps:
  - id: review
    type: approval
    with:
      message: "go?"
      approvers: [alice@example.com, dave@example.com, "group:sre"]
      min_approvals: 2
      allow_self_approval: false
  - id: second
    type: approval
    with:
      message: "batch {{{{ inputs.batch_size }}}}?"
      approvers: ["group:sre"]
      modifiable: [batch_size]
  - id: act
    type: shell
    with: {{command: [echo, "batch={{{{ inputs.batch_size }}}}"]}}
"""


INTERNAL_KEY = "test-internal-key-" + "k" * 32  # shared by every worker of these tests


def _keygen(folder: Path, name: str, kind: str = "ed25519") -> Path:
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def _line(principal: str, key: Path, namespace: str) -> str:
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    return f'{principal} namespaces="{namespace}" {kind} {blob}'


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    found = {
        "alice": _keygen(folder, "alice"),
        "bob": _keygen(folder, "bob"),
        "carol": _keygen(folder, "carol"),  # not in the trust file
        "dave": _keygen(folder, "dave", "ecdsa"),
        "seal": _keygen(folder, "seal"),
        "rogue-seal": _keygen(folder, "rogue-seal"),
    }
    trust = folder / "allowed_signers"
    trust.write_text(
        "\n".join(
            [
                _line("alice@example.com", found["alice"], "qlrf"),
                _line("bob@example.com", found["bob"], "qlrf"),
                _line("dave@example.com", found["dave"], "qlrf"),
                _line("worker-1", found["seal"], "qlrf-seal"),
            ]
        )
        + "\n"
    )
    found["trust"] = trust
    groups = folder / "groups.yaml"
    groups.write_text("sre: [bob@example.com]\n")
    found["groups"] = groups
    return found


@pytest.fixture
def signed(keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """This process's worker in signed mode, sealing runs; the client signs as alice."""
    monkeypatch.setenv("QLRF_ALLOWED_SIGNERS", str(keys["trust"]))
    monkeypatch.setenv("QLRF_INTERNAL_KEY", INTERNAL_KEY)
    monkeypatch.setenv("QLRF_SEAL_KEY", str(keys["seal"]))
    monkeypatch.setenv("QLRF_GROUPS_FILE", str(keys["groups"]))
    monkeypatch.setenv("QLRF_SIGNING_KEY", str(keys["alice"]))
    return keys


async def _as(
    who: Path, client: Client, run: str, request: dict[str, Any], name: str
) -> dict[str, Any]:
    """The request signed with `who`'s key, as the CLI signs it."""
    before = os.environ.get("QLRF_SIGNING_KEY")
    os.environ["QLRF_SIGNING_KEY"] = str(who)
    try:
        return await updates.signed(client, run, request, name)
    finally:
        if before is not None:
            os.environ["QLRF_SIGNING_KEY"] = before


async def _send(handle: Any, request: dict[str, Any], name: str = "decide") -> tuple[bool, str]:
    try:
        result = await handle.execute_update(name, request)
    except WorkflowUpdateFailedError as exc:
        return False, str(getattr(exc.cause, "message", exc.cause))
    return True, json.dumps(result)


def test_an_unsigned_start_fails_unauthenticated_and_runs_nothing(
    temporal_address, tmp_path, signed
):
    path = write_runbook(tmp_path, RUNBOOK.format(name="unsigned"))
    compiled = compile_file(path, [])

    async def scenario() -> tuple[WorkflowFailureError | None, dict[str, Any], str]:
        client = await Client.connect(temporal_address)
        queue = f"trust-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                RunInput(compiled.plan.to_dict(), {}, "alice@example.com"),
                id=f"unsigned-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            failure = None
            try:
                await handle.result()
            except WorkflowFailureError as exc:
                failure = exc
            state = (await client_state.view_of(handle, client)).to_json()
            history = (await handle.fetch_history()).to_json()
        return failure, state, history

    failure, state, history = asyncio.run(scenario())
    assert failure is not None and getattr(failure.cause, "type", None) == "Unauthenticated"
    assert "carries no signature" in state["error"]["message"]
    assert all(s["status"] == "skipped" for s in state["steps"].values())
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in history  # not one step ran
    assert state["identity"]["mode"] == "signed"


def test_forged_and_replayed_decisions_are_refused_and_listed_approvers_decide(
    temporal_address, tmp_path, signed, run_store
):
    name = f"signed-{uuid.uuid4().hex[:6]}"
    path = write_runbook(tmp_path, RUNBOOK.format(name=name))
    compiled = compile_file(path, [])
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        client = await Client.connect(temporal_address)
        queue = f"trust-{uuid.uuid4()}"
        wid = f"{name}-{uuid.uuid4().hex[:6]}"
        other = f"{name}-other-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            # The client claims groups in which dave is sre; the worker's groups rule.
            handle, _ = await runs.start(
                client,
                compiled.plan,
                compiled.inputs,
                "mallory",
                workflow_id=wid,
                task_queue=queue,
                groups={"sre": ["dave@example.com", "carol@example.com"]},
                record=True,
            )
            await runs.start(
                client, compiled.plan, compiled.inputs, "x", workflow_id=other, task_queue=queue
            )
            await wait_for_gate(handle)
            review = {"gate": "review", "decision": "approve", "comment": "ok"}
            forged = {**review, "by": "bob@example.com"}
            refusals = {
                "forged update": await _send(handle, forged),
                "carol": await _send(
                    handle, await _as(signed["carol"], client, wid, review, "decide")
                ),
                "self approval": await _send(
                    handle, await _as(signed["alice"], client, wid, review, "decide")
                ),
                "another run": await _send(
                    handle, await _as(signed["bob"], client, other, review, "decide")
                ),
                "another gate": await _send(
                    handle,
                    await _as(signed["bob"], client, wid, {**review, "gate": "second"}, "decide")
                    | {"gate": "review"},
                ),
                "bob as dave": await _send(
                    handle,
                    await _as(signed["bob"], client, wid, review, "decide")
                    | {"by": "dave@example.com"},
                ),
            }
            # An expired signature, made right: its not_after has passed.
            state = (await client_state.view_of(handle, client)).to_json()
            expired_at = iso(datetime.now(UTC) - timedelta(minutes=1))
            claim = claims.decision_claim(
                review,
                run_id=wid,
                temporal_run_id=state["temporal_run_id"],
                round_=0,
                plan_hash=state["plan_hash"],
                inputs_hash_now=state["inputs_hash"],
            )
            text = claims.canonical({**claim, "nonce": "e" * 24, "not_after": expired_at})
            signature = subprocess.run(
                ["ssh-keygen", "-q", "-Y", "sign", "-f", str(signed["bob"]), "-n", "qlrf"],
                input=text,
                capture_output=True,
                check=True,
            ).stdout.decode()
            refusals["expired"] = await _send(
                handle,
                {
                    **review,
                    "proof": {"signature": signature, "nonce": "e" * 24, "not_after": expired_at},
                },
            )
            await handle.signal("decide", forged)  # the same forgery as a signal
            bob = await _as(signed["bob"], client, wid, review, "decide")
            seen["bob"] = await _send(handle, bob)
            refusals["replayed"] = await _send(handle, bob)
            seen["dave"] = await _send(
                handle, await _as(signed["dave"], client, wid, review, "decide")
            )
            await wait_for_gate(handle, "second")
            # dave is in the client's groups, not the worker's.
            approve = {"gate": "second", "decision": "approve"}
            refusals["not in group"] = await _send(
                handle, await _as(signed["dave"], client, wid, approve, "decide")
            )
            early = await _as(signed["bob"], client, wid, approve, "decide")  # round 0
            modify = {"gate": "second", "decision": "modify", "set": {"batch_size": 7}}
            seen["modify"] = await _send(
                handle, await _as(signed["bob"], client, wid, modify, "decide")
            )
            refusals["earlier round"] = await _send(handle, early)
            seen["final"] = await _send(
                handle, await _as(signed["bob"], client, wid, approve, "decide")
            )
            await handle.result()
            seen["state"] = (await client_state.view_of(handle, client)).to_json()
            seen["history"] = (await handle.fetch_history()).to_json()
            seen["refusals"] = refusals
            await client.get_workflow_handle(other).terminate()

    asyncio.run(scenario())
    refusals = seen["refusals"]
    assert all(ok is False for ok, _ in refusals.values()), refusals
    reasons = {k: why for k, (_, why) in refusals.items()}
    assert "carries no signature" in reasons["forged update"]
    assert "not in the worker's trust file" in reasons["carol"]
    assert "may not approve it" in reasons["self approval"]
    assert "does not verify" in reasons["another run"]
    assert "does not verify" in reasons["another gate"]
    assert "belongs to bob@example.com" in reasons["bob as dave"]
    assert "expired" in reasons["expired"]
    assert "used already" in reasons["replayed"]
    assert "may not decide" in reasons["not in group"]
    assert "does not verify" in reasons["earlier round"]
    assert seen["bob"][0] and seen["dave"][0] and seen["modify"][0] and seen["final"][0]
    state = seen["state"]
    assert state["status"] == "succeeded"
    assert state["started_by"] == "alice@example.com"  # not "mallory": the key says
    review_gate = next(g for g in state["gates"] if g["gate"] == "review")
    assert [(a["by"], a["verified"]) for a in review_gate["approvals"]] == [
        ("bob@example.com", True),
        ("dave@example.com", True),
    ]
    assert "carries no signature" in review_gate["refused"][0]["reason"]
    assert state["steps"]["act"]["output"]["stdout"].strip() == "batch=7"
    # A refused Update leaves nothing in history: only the 4 accepted ones are there.
    assert seen["history"].count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 4
    seen_run = state["run_id"]

    # Evidence: the bundle is sealed, verifies, and every tampering is caught.
    env = {
        "QLRF_DATABASE_URL": run_store,
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_ALLOWED_SIGNERS": str(signed["trust"]),
    }
    bundle_file = tmp_path / "evidence.json"
    made = qlrf("evidence", seen_run, "--out", str(bundle_file), env=env)
    assert made.returncode == 0, made.stderr
    bundle = json.loads(bundle_file.read_text())
    assert bundle["identity"]["mode"] == "signed" and bundle["seal"]["signature"]
    assert [(a["by"], a["verified"]) for a in bundle["approvals"]][:2] == [
        ("bob@example.com", True),
        ("dave@example.com", True),
    ]
    ok = qlrf("evidence", "--verify", str(bundle_file), "--against-store", env=env)
    assert ok.returncode == 0 and "sealed by worker-1" in ok.stdout, ok.stderr
    md = qlrf("evidence", seen_run, "--format", "md", env=env)
    assert "Identities: **verified**" in md.stdout and "(verified)" in md.stdout

    forged = dict(bundle)
    forged["approvals"] = [dict(a) for a in bundle["approvals"]]
    forged["approvals"][0]["by"] = "carol@example.com"
    forged["run"] = {**bundle["run"], "status": "failed"}
    body = {k: v for k, v in forged.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged["digest"] = {"algorithm": "sha256", "value": hashlib.sha256(text.encode()).hexdigest()}
    forged_file = tmp_path / "forged.json"
    forged_file.write_text(json.dumps(forged))
    refused = qlrf("evidence", "--verify", str(forged_file), env=env)
    assert refused.returncode == 1 and "edited" in refused.stderr

    rogue = tmp_path / "rogue_signers"
    rogue.write_text(_line("worker-1", signed["rogue-seal"], "qlrf-seal") + "\n")
    wrong = qlrf("evidence", "--verify", str(bundle_file), "--allowed-signers", str(rogue), env=env)
    assert wrong.returncode == 1 and "not allowed to seal" in wrong.stderr

    async def delete_a_row() -> None:
        conn = await asyncpg.connect(run_store)
        try:
            await conn.execute(
                "DELETE FROM step_events WHERE ctid = (SELECT e.ctid FROM step_events e "
                "JOIN runs r USING (run_id) WHERE r.workflow_id = $1 AND e.step = 'act' "
                "LIMIT 1)",
                seen_run,
            )
        finally:
            await conn.close()

    asyncio.run(delete_a_row())
    against = qlrf("evidence", "--verify", str(bundle_file), "--against-store", env=env)
    assert against.returncode == 1 and "run store says otherwise" in against.stderr
    again = tmp_path / "again.json"
    assert qlrf("evidence", seen_run, "--out", str(again), env=env).returncode == 0
    broken = qlrf("evidence", "--verify", str(again), env=env)
    assert broken.returncode == 1, broken.stdout
    assert "no hash-chained record" in broken.stderr or "chain is broken" in broken.stderr


def test_the_cli_signs_refuses_as_and_says_how_to_set_a_key(env, tmp_path, signed):
    name = f"cli-signed-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(RUNBOOK.format(name=name))
    signed_env = {
        **env,
        "QLRF_ALLOWED_SIGNERS": str(signed["trust"]),
        "QLRF_GROUPS_FILE": str(signed["groups"]),
        "QLRF_SIGNING_KEY": str(tmp_path / "no-such-key"),
    }
    missing = qlrf("apply", str(path), "--detach", env=signed_env)
    assert missing.returncode != 0
    assert "QLRF_SIGNING_KEY" in missing.stderr and "Traceback" not in missing.stderr
    assert name not in qlrf("list", env=env).stdout  # nothing was started

    signed_env["QLRF_SIGNING_KEY"] = str(signed["alice"])
    # The key says who starts: `--as` is refused, as approve refuses it, and nothing starts.
    as_bob = qlrf("apply", str(path), "--detach", "--as", "bob", env=signed_env)
    assert as_bob.returncode == 2 and "--as is refused" in as_bob.stderr, as_bob.stderr
    assert name not in qlrf("list", env=env).stdout
    started = qlrf("apply", str(path), "--detach", "--format", "json", env=signed_env)
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)["run_id"]
    worker = subprocess.Popen(
        [str(EXE), "worker"],
        env={**os.environ, **signed_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        as_other = qlrf("approve", run, "review", "--as", "bob@example.com", env=signed_env)
        assert as_other.returncode != 0 and "--as is refused" in as_other.stderr
        bob_env = {**signed_env, "QLRF_SIGNING_KEY": str(signed["bob"])}

        def answered() -> subprocess.CompletedProcess[str] | None:
            # Until the worker polls and the gate opens (each refusal says so, and nothing
            # is sent).
            approved = qlrf("approve", run, "review", "-c", "fine", env=bob_env)
            said = approved.stderr
            early = "no worker" in said or "is starting" in said or "no gate 'review'" in said
            return None if early and approved.returncode != 0 else approved

        approved = eventually(answered, "a worker takes the approval")
        assert approved.returncode == 0, approved.stderr
        assert "by bob@example.com accepted" in approved.stdout
        assert "(unverified)" not in approved.stdout
        paused = qlrf("pause", run, env=bob_env)
        assert paused.returncode == 0, paused.stderr
        status = json.loads(qlrf("status", run, "--format", "json", env=signed_env).stdout)
        assert status["controls"][0]["by"] == "bob@example.com"
        assert status["controls"][0]["verified"] is True
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_signed_schedule_starts_proven_runs_and_an_unsigned_one_does_not(env, tmp_path, signed):
    from tests.helpers.cli import worker_process
    from tests.helpers.worker_ops import until

    signed_env = {
        **env,
        "QLRF_ALLOWED_SIGNERS": str(signed["trust"]),
        "QLRF_SIGNING_KEY": str(signed["bob"]),
    }
    name = f"sched-signed-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"apiVersion: qlrf/v1\nkind: Runbook\nname: {name}\nsteps:\n"
        "  - {id: say, type: shell, with: {command: [echo, hi]}}\n"
    )
    worker = worker_process(signed_env)
    try:
        outcomes = {}
        unsigned = {**env, "QLRF_SIGNING_KEY": "", "QLRF_ALLOWED_SIGNERS": ""}
        for kind, client_env in (("signed", signed_env), ("unsigned", unsigned)):
            sid = f"{kind}-{uuid.uuid4().hex[:6]}"
            made = qlrf(
                "schedule", "create", str(path), "--cron", "@yearly", "--id", sid, env=client_env
            )
            assert made.returncode == 0, made.stderr
            assert qlrf("schedule", "trigger", sid, env=client_env).returncode == 0

            def ended(sid: str = sid) -> list[dict[str, Any]]:
                rows = json.loads(qlrf("list", "--format", "json", env=env).stdout)
                return [r for r in rows if r["schedule"] == sid and r["status"] != "running"]

            [row] = until(ended, f"the {kind} schedule's run ends")
            outcomes[kind] = json.loads(
                qlrf("status", row["run_id"], "--format", "json", env=env).stdout
            )
            qlrf("schedule", "delete", sid, env=client_env)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    ok, refused = outcomes["signed"], outcomes["unsigned"]
    assert ok["status"] == "succeeded", ok["error"]
    assert ok["identity"]["started_by_verified"] is True
    assert refused["status"] == "failed"
    assert refused["error"]["type"] == "Unauthenticated"
    assert refused["steps"]["say"]["status"] == "skipped"


def test_a_worker_with_an_unusable_trust_file_refuses_to_start(env, tmp_path):
    """Before anything runs: the worker names the variable and what is wrong."""
    unreadable = tmp_path / "signers"
    unreadable.write_text("alice@example.com ssh-ed25519 not-base64!\n")
    for value, said in (
        (str(tmp_path / "missing"), "no such file"),
        (str(tmp_path), "a directory"),
        (str(unreadable), "line 1: the key is not base64"),
    ):
        done = qlrf("worker", env={**env, "QLRF_ALLOWED_SIGNERS": value}, timeout=60)
        assert done.returncode != 0
        assert "QLRF_ALLOWED_SIGNERS" in done.stderr and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_batch_started_straight_through_temporal_runs_nothing(temporal_address, tmp_path):
    """qlrf.Batch runs items as activities; started by hand, without its run, it would
    run a step no run asked for (and no start signature checked). It refuses."""
    from runner.contract import BATCH_WORKFLOW_TYPE, BatchInput, BatchItem

    marker = tmp_path / "ran"

    async def scenario() -> tuple[Any, str]:
        client = await Client.connect(temporal_address)
        queue = f"trust-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(
                BATCH_WORKFLOW_TYPE,
                BatchInput(
                    run_id="forged",
                    step="x",
                    name="x",
                    wave="all",
                    activity="shell",
                    retry={
                        "max_attempts": 1,
                        "initial_interval_ms": 1000,
                        "backoff_coefficient": 2.0,
                        "max_interval_ms": 1000,
                        "non_retryable_errors": [],
                    },
                    timeouts={"start_to_close_ms": 10_000},
                    items=[BatchItem(0, "h", {"command": ["touch", str(marker)]})],
                    concurrency=1,
                    budget=None,
                    keep_outputs=True,
                ),
                id=f"forged-batch-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await handle.result()
            history = (await handle.fetch_history()).to_json()
        return failed.value, history

    failure, history = asyncio.run(scenario())
    assert getattr(failure.cause, "type", None) == "Unauthenticated"
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in history and not marker.exists()


def test_a_captured_start_signature_starts_one_execution_ever(
    temporal_address, tmp_path, signed, run_store
):
    """The attack of the adversarial review, through the plain Temporal API: read a
    signed start from history, terminate the run, start the same workflow id again with
    the same input, within the signature's window. The second execution fails with
    Unauthenticated; so does one with a forged redrive that would skip every gate."""
    from temporalio.api.enums.v1 import EventType

    name = f"replay-{uuid.uuid4().hex[:6]}"
    path = write_runbook(tmp_path, RUNBOOK.format(name=name))
    compiled = compile_file(path, [])

    async def scenario() -> dict[str, dict[str, Any]]:
        client = await Client.connect(temporal_address)
        queue = f"trust-{uuid.uuid4()}"
        wid = f"{name}-{uuid.uuid4().hex[:6]}"
        found: dict[str, dict[str, Any]] = {}
        async with build_worker(client, task_queue=queue):
            handle, _ = await runs.start(
                client, compiled.plan, compiled.inputs, "alice", workflow_id=wid,
                task_queue=queue, record=True,
            )  # fmt: skip
            await wait_for_gate(handle)
            async for event in handle.fetch_history_events():  # what the attacker reads
                assert event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
                attrs = event.workflow_execution_started_event_attributes
                [captured] = await client.data_converter.decode(attrs.input.payloads, [RunInput])
                break
            await handle.terminate("the attacker")
            gated = {"review": {"decision": "approved"}, "second": {"decision": "approved"}}
            for kind, redrive in (
                ("replayed", None),
                ("with a forged redrive", {"of": "nothing", "steps": gated}),
            ):
                captured.redrive = redrive
                again = await client.start_workflow(
                    WORKFLOW_TYPE, captured, id=wid, task_queue=queue
                )
                with contextlib.suppress(WorkflowFailureError):
                    await asyncio.wait_for(again.result(), 60)
                found[kind] = dict(await again.query("state"))
        return found

    found = asyncio.run(scenario())
    for kind, state in found.items():
        assert state["error"]["type"] == "Unauthenticated", (kind, state["error"])
        assert all(s["status"] == "skipped" for s in state["steps"].values()), kind
        assert state["steps"]["act"]["status"] == "skipped"
    assert "used once" in found["replayed"]["error"]["message"]


def test_a_schedule_s_signature_starts_only_that_schedule_s_runs(env, tmp_path, signed):
    """The schedule's proof, read from `schedule describe`, given to a run started
    through the plain Temporal API (with the schedule's search attribute set by hand,
    which the dev server allows): refused, since the schedule did not start it. After
    the schedule is deleted, refused again. The schedule's own run passes."""
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    from tests.helpers.cli import worker_process
    from tests.helpers.worker_ops import until

    signed_env = {
        **env,
        "QLRF_ALLOWED_SIGNERS": str(signed["trust"]),
        "QLRF_SIGNING_KEY": str(signed["bob"]),
        "QLRF_GROUPS_FILE": str(signed["groups"]),
    }
    name = f"sched-proof-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"apiVersion: qlrf/v1\nkind: Runbook\nname: {name}\nsteps:\n"
        "  - {id: say, type: shell, with: {command: [echo, hi]}}\n"
    )
    sid = f"s-{uuid.uuid4().hex[:6]}"
    made = qlrf("schedule", "create", str(path), "--cron", "@yearly", "--id", sid, env=signed_env)
    assert made.returncode == 0, made.stderr
    worker = worker_process(signed_env)

    async def capture() -> RunInput:
        client = await Client.connect(env["QLRF_TEMPORAL_ADDRESS"])
        from temporalio.client import ScheduleActionStartWorkflow

        described = await client.get_schedule_handle(sid).describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        [captured] = await client.data_converter.decode(action.args, [RunInput])
        return captured

    async def forge(captured: RunInput, attempt: str) -> dict[str, Any]:
        client = await Client.connect(env["QLRF_TEMPORAL_ADDRESS"])
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            captured,
            id=f"{name}-{sid}-{attempt}",
            task_queue=env["QLRF_TASK_QUEUE"],
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword("TemporalScheduledById"), sid)]
            ),
        )
        with contextlib.suppress(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 60)
        return dict(await handle.query("state"))

    try:
        assert qlrf("schedule", "trigger", sid, env=signed_env).returncode == 0

        def ended() -> list[dict[str, Any]]:
            rows = json.loads(qlrf("list", "--format", "json", env=env).stdout)
            return [r for r in rows if r["schedule"] == sid and r["status"] != "running"]

        [row] = until(ended, "the schedule's own run ends")
        own = json.loads(qlrf("status", row["run_id"], "--format", "json", env=env).stdout)
        captured = asyncio.run(capture())  # what `schedule describe` shows anyone
        forged = asyncio.run(forge(captured, "forged"))
        again = asyncio.run(forge(captured, "again"))
        assert qlrf("schedule", "delete", sid, env=signed_env).returncode == 0
        after = asyncio.run(forge(captured, "after-delete"))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert own["status"] == "succeeded", own["error"]
    for state in (forged, again):
        assert state["error"]["type"] == "Unauthenticated", state["error"]
        assert "did not start this run" in state["error"]["message"]
        assert state["steps"]["say"]["status"] == "skipped"
    assert after["error"]["type"] == "Unauthenticated"
    assert (
        "does not exist" in after["error"]["message"]
        or "not that schedule" in after["error"]["message"]
    )


@workflow.defn(name="rogue-parent")
class RogueParent:
    """A workflow of someone else's, on a worker of theirs, starting a qlrf run as its
    child with any input it likes."""

    @workflow.run
    async def run(self, request: RunInput) -> Any:
        return await workflow.execute_child_workflow(
            WORKFLOW_TYPE, request, id=f"{workflow.info().workflow_id}.child"
        )


def test_a_run_started_by_another_workflow_is_not_trusted_as_a_child(
    temporal_address, tmp_path, signed, run_store
):
    """A run whose parent is not a qlrf run (no vouching from the workers' key) fails
    with Unauthenticated in signed mode, as an unsigned start does."""
    from runner.worker import WORKFLOWS

    path = write_runbook(tmp_path, RUNBOOK.format(name="orphan"))
    compiled = compile_file(path, [])

    async def scenario() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        queue = f"trust-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue, workflows=[*WORKFLOWS, RogueParent]):
            parent = await client.start_workflow(
                "rogue-parent",
                RunInput(compiled.plan.to_dict(), {}, "alice@example.com"),
                id=f"rogue-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(parent.result(), 60)
            child = client.get_workflow_handle(f"{parent.id}.child")
            return dict(await child.query("state"))

    state = asyncio.run(scenario())
    assert state["error"]["type"] == "Unauthenticated", state["error"]
    assert "vouches" in state["error"]["message"]
    assert all(s["status"] == "skipped" for s in state["steps"].values())
