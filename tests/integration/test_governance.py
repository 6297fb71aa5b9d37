"""Governance on real servers (docs/governance.md): a signed-mode worker with a policy,
real git repositories with commits signed by ssh-keygen keys, starts, decisions,
controls and proposals sent through the client and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from runner.app.provenance import provenance
from runner.client import runs
from runner.client import state as client_state
from runner.pipeline import compile_file
from runner.worker import build_worker
from tests.helpers import updates
from tests.helpers.cli import qlrf
from tests.helpers.gates import wait_for_gate
from tests.helpers.waiting import eventually_async

INTERNAL_KEY = "test-internal-key-" + "g" * 32

DRILL = """\
apiVersion: qlrf/v1
kind: Drill
name: {name}
labels: {{env: prod}}
steps:
  - id: review
    type: approval
    with: {{message: "fail over?", approvers: ["group:sre", alice]}}
  - id: act
    type: shell
    with: {{command: [echo, failed over]}}
"""

PROPOSAL = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
inputs:
  hosts: {{type: array, default: [a, b]}}
steps:
  - id: work
    type: shell
    foreach: "{{{{ inputs.hosts }}}}"
    as: host
    with: {{command: [echo, "{command} {{{{ host }}}}"]}}
"""


def _keygen(folder: Path, name: str) -> Path:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def _line(principal: str, key: Path, namespaces: str = "qlrf,git") -> str:
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    return f'{principal} namespaces="{namespaces}" {kind} {blob}'


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("governance")
    keys = {n: _keygen(folder, n) for n in ("alice", "bob", "rita", "dora", "eve", "agent")}
    seal = _keygen(folder, "seal")
    trust = folder / "allowed_signers"
    trust.write_text(
        "\n".join(
            [
                *(_line(n, k) for n, k in keys.items()),
                _line("worker-1", seal, "qlrf-seal"),
            ]
        )
        + "\n"
    )
    groups = folder / "groups.yaml"
    groups.write_text(
        "sre: [bob, rita]\nrelease-managers: [rita]\ndirectors: [dora, eve]\nagents: [agent]\n"
    )
    repo = folder / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for key, value in (
        ("user.name", "Bob"),
        ("user.email", "bob@example.com"),
        ("gpg.format", "ssh"),
        ("user.signingkey", str(keys["bob"])),
        ("commit.gpgsign", "true"),
    ):
        _git(repo, "config", key, value)
    _git(repo, "remote", "add", "origin", "https://deploy:hunter2@git.example.com/ops/runbooks.git")
    (repo / "drill.yaml").write_text(DRILL.format(name="prod-failover"))
    _git(repo, "add", "drill.yaml")
    _git(repo, "commit", "-q", "-m", "the failover drill")
    return {**keys, "trust": trust, "groups": groups, "repo": repo, "seal": seal}


def _policy(folder: Path, freeze: str = "", glass: bool = True) -> Path:
    windows = ""
    if freeze:
        windows = f"    windows:\n      freeze: ['{freeze}']\n"
        if glass:
            windows += "      break_glass: {approvers: ['group:directors'], min_approvals: 2}\n"
    path = folder / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(
        "rules:\n"
        "  - match: {kind: Drill, labels: {env: prod}}\n"
        "    start: ['group:sre']\n"
        "    approve: ['group:release-managers']\n"
        "    operate: ['group:sre']\n"
        "    require: {committed: true, branch: main}\n" + windows + "proposals:\n"
        "  principals: ['group:agents']\n"
        "  allow_types: [shell, http]\n"
        "  max_items: 3\n"
        "  forbid: ['rm\\s+-rf\\s+/', 'mkfs']\n"
        "  gate: {approvers: ['group:sre', agent], min_approvals: 1}\n"
    )
    return path


@pytest.fixture
def signed(world, monkeypatch, tmp_path) -> dict[str, Path]:
    monkeypatch.setenv("QLRF_ALLOWED_SIGNERS", str(world["trust"]))
    monkeypatch.setenv("QLRF_INTERNAL_KEY", INTERNAL_KEY)
    monkeypatch.setenv("QLRF_SEAL_KEY", str(world["seal"]))
    monkeypatch.setenv("QLRF_GROUPS_FILE", str(world["groups"]))
    monkeypatch.setenv("QLRF_POLICY", str(_policy(tmp_path)))
    monkeypatch.setenv("QLRF_SIGNING_KEY", str(world["bob"]))  # restored after each test
    return world


def _as(who: Path) -> None:
    import os

    os.environ["QLRF_SIGNING_KEY"] = str(who)


async def _start(client: Client, path: Path, who: Path, queue: str, **kw: Any) -> Any:
    _as(who)
    compiled = compile_file(path, [])
    handle, _ = await runs.start(
        client,
        compiled.plan,
        compiled.inputs,
        "claimed-name",
        workflow_id=f"gov-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        record=True,
        provenance=kw.get("provenance", provenance(path, compiled.source)),
    )
    return handle


async def _ended(handle: Any) -> str | None:
    try:
        await handle.result()
    except WorkflowFailureError as exc:
        return str(getattr(exc.cause, "message", exc.cause))
    return None


async def _decide(client: Client, handle: Any, who: Path, gate: str, kind: str = "approve"):
    _as(who)
    request = {"gate": gate, "decision": kind}
    return await updates.update(client, handle.id, "decide", request, signed=True)


def test_who_may_start_decide_and_operate_a_prod_drill(temporal_address, signed, run_store):
    repo = signed["repo"]
    drill = repo / "drill.yaml"

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        client = await Client.connect(temporal_address)
        queue = f"gov-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            refused = await _start(client, drill, signed["alice"], queue)
            seen["alice"] = await _ended(refused)
            seen["alice_state"] = (await client_state.view_of(refused, client)).to_json()
            handle = await _start(client, drill, signed["bob"], queue)
            await wait_for_gate(handle)
            _as(signed["alice"])
            seen["alice_pause"] = await updates.update(
                client, handle.id, "control", {"action": "pause"}, signed=True
            )
            _as(signed["bob"])
            seen["bob_pause"] = await updates.update(
                client, handle.id, "control", {"action": "pause"}, signed=True
            )
            seen["bob_resume"] = await updates.update(
                client, handle.id, "control", {"action": "resume"}, signed=True
            )
            # alice is the gate's approver but not a release manager; bob started it.
            seen["alice_decides"] = await _decide(client, handle, signed["alice"], "review")
            seen["rita_decides"] = await _decide(client, handle, signed["rita"], "review")
            seen["ended"] = await _ended(handle)
            seen["state"] = (await client_state.view_of(handle, client)).to_json()
            seen["run"] = handle.id
        return seen

    seen = asyncio.run(scenario())
    assert "policy rule 0 (kind: Drill, labels: {env: prod}) lets group:sre start" in seen["alice"]
    assert "alice is not among them" in seen["alice"]
    assert all(s["status"] == "skipped" for s in seen["alice_state"]["steps"].values())
    ok, why = seen["alice_pause"]
    assert not ok and "policy rule 0" in why and "lets group:sre pause this run" in why
    assert seen["bob_pause"][0] and seen["bob_resume"][0]
    ok, why = seen["alice_decides"]
    assert not ok and "lets group:release-managers decide gate 'review'" in why
    assert seen["rita_decides"][0], seen["rita_decides"]
    assert seen["ended"] is None
    state = seen["state"]
    assert state["started_by"] == "bob" and state["status"] == "succeeded"
    found = state["provenance"]
    assert found["git"] and found["clean"] and found["path"] == "drill.yaml"
    assert found["commit"] == _git(repo, "rev-parse", "HEAD")
    assert found["remote"] == "https://git.example.com/ops/runbooks.git"  # no password
    assert found["signature"]["verified"] and found["signature"]["signer"] == "bob"
    assert "main" in found["branches"]
    assert state["policy"]["rules"][0]["index"] == 0
    status = qlrf("status", seen["run"], env={"QLRF_TEMPORAL_ADDRESS": temporal_address})
    assert f"at {found['commit'][:12]} (clean; signed by bob; on main)" in status.stdout
    evidence = qlrf(
        "evidence", seen["run"], "--format", "json", env={"QLRF_TEMPORAL_ADDRESS": temporal_address}
    )
    assert evidence.returncode == 0, evidence.stderr
    bundle = json.loads(evidence.stdout)
    assert bundle["identity"]["provenance"]["commit"] == found["commit"]
    assert bundle["identity"]["policy"]["sha256"] == state["policy"]["sha256"]
    assert "hunter2" not in evidence.stdout


def test_a_dirty_file_and_a_commit_off_main_are_refused(temporal_address, signed, run_store):
    repo = signed["repo"]

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        client = await Client.connect(temporal_address)
        queue = f"gov-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            dirty = repo / "drill.yaml"
            before = dirty.read_text()
            dirty.write_text(before.replace("failed over", "edited on a laptop"))
            try:
                seen["dirty"] = await _ended(await _start(client, dirty, signed["bob"], queue))
            finally:
                dirty.write_text(before)
            untracked = repo / "new.yaml"
            untracked.write_text(DRILL.format(name="prod-new"))
            seen["untracked"] = await _ended(await _start(client, untracked, signed["bob"], queue))
            untracked.unlink()
            _git(repo, "checkout", "-q", "-b", "feature")
            try:
                (repo / "drill.yaml").write_text(before.replace("failed over", "on a branch"))
                _git(repo, "commit", "-q", "-am", "unreviewed")
                seen["branch"] = await _ended(
                    await _start(client, repo / "drill.yaml", signed["bob"], queue)
                )
            finally:
                _git(repo, "checkout", "-q", "main")
        return seen

    seen = asyncio.run(scenario())
    assert "requires a committed runbook; drill.yaml differs from commit" in seen["dirty"]
    assert "new.yaml is not committed" in seen["untracked"]
    assert "requires a commit on main" in seen["branch"] and "feature" in seen["branch"]


def test_a_forged_provenance_is_not_proven(temporal_address, signed, run_store):
    """Through the plain Temporal API: a signed start whose provenance was changed after
    signing is refused as unproven."""
    from temporalio.client import Client as Plain

    from runner.client.runs import run_request
    from runner.client.signing import sign
    from runner.contract import WORKFLOW_TYPE
    from runner.trust import claims

    repo = signed["repo"]
    (repo / "drill.yaml").write_text(DRILL.format(name="prod-failover") + "# edited\n")
    try:

        async def scenario() -> str | None:
            client = await Plain.connect(temporal_address)
            queue = f"gov-{uuid.uuid4()}"
            async with build_worker(client, task_queue=queue):
                compiled = compile_file(repo / "drill.yaml", [])
                dirty = provenance(repo / "drill.yaml", compiled.source)
                wid = f"gov-{uuid.uuid4().hex[:8]}"
                request = run_request(compiled.plan, compiled.inputs, "bob", record=True)
                _as(signed["bob"])
                request.provenance = dirty
                request.proof = sign(
                    claims.start_claim(wid, compiled.plan.plan_hash, compiled.inputs, None, dirty)
                )
                request.provenance = {**dirty, "clean": True}  # the lie
                handle = await client.start_workflow(
                    WORKFLOW_TYPE, request, id=wid, task_queue=queue
                )
                return await _ended(handle)

        why = asyncio.run(scenario())
    finally:
        _git(repo, "checkout", "-q", "drill.yaml")
    assert why is not None and "not proven" in why


def test_proposals_are_checked_then_stopped_for_a_person(
    temporal_address, signed, run_store, tmp_path
):
    def proposal(name: str, command: str, hosts: int = 2, extra: str = "") -> Path:
        text = PROPOSAL.format(name=name, command=command).replace(
            "default: [a, b]", f"default: {[f'h{i}' for i in range(hosts)]}"
        )
        path = tmp_path / f"{name}.yaml"
        path.write_text(text + extra)
        return path

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        client = await Client.connect(temporal_address)
        queue = f"gov-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            agent = signed["agent"]
            for case, path in {
                "forbidden": proposal("p-forbid", "rm -rf /"),
                "too_many": proposal("p-many", "uptime", hosts=4),
                "type": proposal(
                    "p-type",
                    "uptime",
                    extra="  - id: wait\n    type: sleep\n    with: {duration: 1s}\n",
                ),
            }.items():
                seen[case] = await _ended(await _start(client, path, agent, queue))
            handle = await _start(client, proposal("p-ok", "uptime"), agent, queue)
            seen["gate"] = await wait_for_gate(handle, "policy:proposal")
            seen["self"] = await _decide(client, handle, agent, "policy:proposal")
            seen["bob"] = await _decide(client, handle, signed["bob"], "policy:proposal")
            seen["ended"] = await _ended(handle)
            seen["state"] = (await client_state.view_of(handle, client)).to_json()
            # A person's run of the same file is no proposal.
            seen["person"] = await _ended(
                await _start(client, proposal("p-person", "uptime", hosts=4), signed["bob"], queue)
            )
        return seen

    seen = asyncio.run(scenario())
    assert "policy proposals: step 'work' runs" in seen["forbidden"]
    assert "forbid 'rm\\\\s+-rf\\\\s+/' refuses" in seen["forbidden"]
    assert "hold 4 items" in seen["too_many"] and "max_items is 3" in seen["too_many"]
    assert "step 'wait' is a sleep step; a proposal may use shell, http only" in seen["type"]
    ok, why = seen["self"]
    assert not ok and "agent started this run and may not approve it" in why
    assert seen["bob"][0], seen["bob"]
    assert seen["ended"] is None
    gate = next(g for g in seen["state"]["gates"] if g["gate"] == "policy:proposal")
    assert gate["status"] == "approved" and gate["approvals"][0]["by"] == "bob"
    assert seen["state"]["policy"]["proposal"] is True
    assert seen["person"] is None


def test_a_freeze_waits_for_break_glass_or_refuses(
    temporal_address, signed, run_store, tmp_path, monkeypatch
):
    today = datetime.now(UTC).date()
    freeze = f"{today - timedelta(days=1)}/{today + timedelta(days=1)}"
    drill = signed["repo"] / "drill.yaml"

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        client = await Client.connect(temporal_address)
        monkeypatch.setenv("QLRF_POLICY", str(_policy(tmp_path, freeze, glass=False)))
        queue = f"gov-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            seen["no_glass"] = await _ended(await _start(client, drill, signed["bob"], queue))
        monkeypatch.setenv("QLRF_POLICY", str(_policy(tmp_path, freeze)))
        queue = f"gov-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handle = await _start(client, drill, signed["bob"], queue)
            seen["gate"] = await wait_for_gate(handle, "policy:break-glass")
            seen["bob"] = await _decide(client, handle, signed["bob"], "policy:break-glass")
            seen["dora"] = await _decide(client, handle, signed["dora"], "policy:break-glass")
            seen["eve"] = await _decide(client, handle, signed["eve"], "policy:break-glass")
            await wait_for_gate(handle, "review")
            seen["rita"] = await _decide(client, handle, signed["rita"], "review")
            seen["ended"] = await _ended(handle)
        return seen

    seen = asyncio.run(scenario())
    assert f"the start is inside the freeze {freeze}" in seen["no_glass"]
    assert "has no break_glass" in seen["no_glass"]
    ok, why = seen["bob"]
    assert not ok and "may not decide gate 'policy:break-glass'" in why
    assert seen["dora"][0] and seen["eve"][0]
    assert seen["ended"] is None


def test_the_cli_names_the_rule_that_refuses_a_start(temporal_address, signed, run_store):
    env = {"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_SIGNING_KEY": str(signed["alice"])}
    done = qlrf("apply", str(signed["repo"] / "drill.yaml"), env=env)
    shown = done.stdout + done.stderr
    assert done.returncode != 0
    assert "policy rule 0 (kind: Drill, labels: {env: prod}) lets group:sre start" in shown
    assert "Traceback" not in shown


def test_a_proposal_waiting_at_its_gate_outlives_its_worker(
    temporal_address, signed, run_store, tmp_path
):
    """The worker is gone while the proposal waits; a new one replays the run from its
    history (the policy as the run took it) and the group's approval lets it run."""
    path = tmp_path / "p-replay.yaml"
    path.write_text(PROPOSAL.format(name="p-replay", command="uptime"))

    async def scenario() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        queue = f"gov-{uuid.uuid4()}"
        async with build_worker(client, task_queue=queue):
            handle = await _start(client, path, signed["agent"], queue)
            await wait_for_gate(handle, "policy:proposal")
        # Edited while no worker runs: the run keeps the policy it started with.
        edited = _policy(tmp_path).read_text().replace("max_items: 3", "max_items: 0")
        (tmp_path / "edited.yaml").write_text(edited)
        import os

        os.environ["QLRF_POLICY"] = str(tmp_path / "edited.yaml")
        async with build_worker(client, task_queue=queue):

            async def approved() -> bool:
                # The new worker may not poll yet: the decision is told that no worker
                # answers, and bob tries again, as a person would; a refusal fails here.
                accepted, said = await _decide(client, handle, signed["bob"], "policy:proposal")
                assert accepted or "worker" in str(said), said
                return bool(accepted)

            await eventually_async(approved, "bob's approval taken by the new worker", 60)
            return {"ended": await asyncio.wait_for(_ended(handle), 120)}

    seen = asyncio.run(scenario())
    assert seen["ended"] is None
