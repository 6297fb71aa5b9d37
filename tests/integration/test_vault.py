"""Secrets from a real OpenBao dev server (tests/helpers/openbao.py), read by real
`qlrf-run worker` processes configured with QLRF_SECRETS_CONFIG: KV v2 through AppRole,
database credentials leased from a database engine on the session's PostgreSQL and
revoked with their attempt (also after a kill -9 of the worker), ssh certificates
signed by the SSH engine for the test hosts, token renewal, a stopped vault, a 403
and a missing key. No value reaches history, the store, the worker's log or the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.helpers.cli import EXE, qlrf
from tests.helpers.hunt import found_in, recorded
from tests.helpers.openbao import Bao
from tests.helpers.waiting import eventually

KV_VALUE = f"kv-{secrets.token_hex(12)}"
DENIED_VALUE = f"denied-{secrets.token_hex(12)}"
POLICY = """
path "secret/data/qlrf/*" { capabilities = ["read"] }
path "database/creds/readonly" { capabilities = ["read"] }
path "database/creds/short" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
path "ssh/sign/ops" { capabilities = ["create", "update"] }
"""
CREATE_ROLE = (
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
)
LEASES_OF = "sys/leases/lookup/database/creds"


def _pg_parts(uri: str) -> tuple[str, str]:
    """(what follows user:password@ in a URL for a login on the session's PostgreSQL, the
    same for the vault's database plugin)."""
    parts = urlsplit(uri)
    host = parts.netloc.split("@", 1)[1]
    query = f"?{parts.query}" if parts.query else ""
    where = f"{host}{parts.path}{query}"
    joiner = "&" if query else "?"
    return where, f"{where}{joiner}sslmode=disable"


@pytest.fixture(scope="module")
def bao(
    tmp_path_factory: pytest.TempPathFactory, postgres_uri: str, hosts: dict[str, Any]
) -> Iterator[Bao]:
    """One OpenBao for the module, set up as an operator would for a qlrf worker."""
    server = Bao.start(tmp_path_factory.mktemp("bao"))
    try:
        server.run("kv", "put", "secret/qlrf/db", f"password={KV_VALUE}", "user=app")
        server.run("kv", "put", "secret/other/db", f"password={DENIED_VALUE}")
        server.run("policy", "write", "qlrf-worker", "-", stdin=POLICY)
        server.run("auth", "enable", "approle")
        server.run(
            "write", "auth/approle/role/qlrf-worker", "token_policies=qlrf-worker", "token_ttl=1h"
        )
        server.run("secrets", "enable", "database")
        _, plugin_where = _pg_parts(postgres_uri)
        server.run(
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            "allowed_roles=readonly,short",
            f"connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{plugin_where}",
            "username=postgres",
            "password=unused-with-trust-auth",
            "verify_connection=true",
        )
        server.run(
            "write",
            "database/roles/readonly",
            "db_name=pg",
            f"creation_statements={CREATE_ROLE}",
            "default_ttl=1h",
            "max_ttl=2h",
        )
        # Leases that end within seconds unless renewed: for the renewal test.
        server.run(
            "write",
            "database/roles/short",
            "db_name=pg",
            f"creation_statements={CREATE_ROLE}",
            "default_ttl=4s",
            "max_ttl=5m",
        )
        server.run("secrets", "enable", "ssh")
        server.run("write", "ssh/config/ca", "generate_signing_key=true")
        server.run(
            "write",
            "ssh/roles/ops",
            "key_type=ca",
            "allow_user_certificates=true",
            "allowed_users=*",
            "ttl=5m",
            "max_ttl=10m",
        )
        # The test hosts' sshd trusts the vault's CA (TrustedUserCAKeys).
        ca = server.field("read", "-field=public_key", "ssh/config/ca")
        (Path(hosts["folder"]) / "user_ca_keys").write_text(ca + "\n")
        yield server
    finally:
        server.stop()


def _approle_files(bao: Bao, folder: Path) -> tuple[Path, Path]:
    role_id = bao.field("read", "-field=role_id", "auth/approle/role/qlrf-worker/role-id")
    secret_id = bao.field(
        "write", "-f", "-field=secret_id", "auth/approle/role/qlrf-worker/secret-id"
    )
    role_file, secret_file = folder / "role-id", folder / "secret-id"
    role_file.write_text(role_id + "\n")
    secret_file.write_text(secret_id + "\n")
    for path in (role_file, secret_file):
        path.chmod(0o600)
    return role_file, secret_file


def _config(folder: Path, address: str, auth: str, kv_cache: str = "0s") -> Path:
    """The worker's configuration; every attempt reads KV afresh unless `kv_cache`."""
    path = folder / "secrets.yaml"
    path.write_text(
        f"""\
# yaml-language-server: $schema=../schemas/secrets-config.schema.json
vault:
  address: {address}
  timeout: 5s
  kv_cache: {kv_cache}
  auth: {auth}
secrets:
  db_password: vault:secret/data/qlrf/db#password
  no_such_key: vault:secret/data/qlrf/db#nope
  no_such_path: vault:secret/data/qlrf/nothing#password
  not_allowed: vault:secret/data/other/db#password
  pg: vault-lease:database/creds/readonly
  pg_short: vault-lease:database/creds/short
"""
    )
    return path


@pytest.fixture
def approle(bao: Bao, tmp_path: Path) -> Path:
    """A worker configuration that logs in with AppRole (and the default KV cache)."""
    role_file, secret_file = _approle_files(bao, tmp_path)
    auth = f"{{method: approle, role_id_file: {role_file}, secret_id_file: {secret_file}}}"
    return _config(tmp_path, bao.address, auth, kv_cache="1s")


class Worker:
    """A `qlrf-run worker` process with its log kept, to be stopped or killed."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [EXE, "worker"],
            env={**os.environ, **env},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[Path], Worker]]:
    started: list[Worker] = []

    def start(config: Path) -> Worker:
        env["QLRF_SECRETS_CONFIG"] = str(config)
        found = Worker(env, tmp_path / f"worker-{len(started)}.log")
        started.append(found)
        return found

    yield start
    for each in started:
        each.stop()


def _runbook(tmp_path: Path, steps: str, inputs: str = "") -> Path:
    path = tmp_path / f"vault-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(f"apiVersion: qlrf/v1\nkind: Task\nname: {path.stem}\n{inputs}steps:\n{steps}")
    return path


def _applied(path: Path, env: dict[str, str], *inputs: str) -> dict[str, Any]:
    args = [arg for value in inputs for arg in ("--input", value)]
    done = qlrf("apply", str(path), "--no-worker", "--format", "json", *args, env=env, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    state: dict[str, Any] = json.loads(done.stdout)
    return state


def _detached(path: Path, env: dict[str, str], *inputs: str) -> str:
    args = [arg for value in inputs for arg in ("--input", value)]
    done = qlrf("apply", str(path), "--no-worker", "--detach", "--format", "json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["run_id"])


def _watched(rid: str, env: dict[str, str]) -> dict[str, Any]:
    qlrf("watch", rid, env=env, timeout=300)
    shown = qlrf("status", rid, "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    state: dict[str, Any] = json.loads(shown.stdout)
    return state


def _leases(bao: Bao, role: str = "readonly") -> list[str]:
    listed = bao.run("list", f"{LEASES_OF}/{role}", check=False, form="json")
    if listed.returncode != 0:
        return []  # nothing under the prefix: the vault answers 404
    return [f"database/creds/{role}/{suffix}" for suffix in json.loads(listed.stdout)]


def _lease_alive(bao: Bao, lease_id: str) -> bool:
    looked = bao.run("lease", "lookup", lease_id, check=False)
    return looked.returncode == 0


async def _vault_roles(postgres_uri: str) -> list[str]:
    connection = await asyncpg.connect(postgres_uri)
    try:
        rows = await connection.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'")
    finally:
        await connection.close()
    return [row["rolname"] for row in rows]


def hold(go: Path, secret: str = "pg", timeout: str = "{heartbeat: 4s}", attempts: int = 3) -> str:
    """A step that logs its lease's user and password into its environment and waits
    for the file `go`."""
    return f"""\
  - id: hold
    type: shell
    timeout: {timeout}
    retry: {{max_attempts: {attempts}, initial_interval: 1s}}
    with:
      env:
        PGUSER: "{{{{ secrets.{secret}.username }}}}"
        PGPASSWORD: "{{{{ secrets.{secret}.password }}}}"
      script: |
        test -n "$PGUSER" && test -n "$PGPASSWORD"
        while [ ! -e {go} ]; do sleep 0.1; done
"""


def test_a_kv_secret_reaches_the_step_through_approle_and_nothing_else(
    bao, approle, worker, env, tmp_path, temporal_address, postgres_uri
):
    path = _runbook(
        tmp_path,
        """\
  - id: digest
    type: shell
    with:
      env: {PW: "{{ secrets.db_password }}"}
      script: |
        printf %s "$PW" | sha256sum | cut -d' ' -f1
        echo "said: $PW"
  - id: peek
    type: shell
    with:
      # The worker's own files: the sandbox shows a step nothing of them.
      script: "cat {folder}/role-id {folder}/secret-id {folder}/secrets.yaml 2>&1 || true"
""".replace("{folder}", str(approle.parent)),
    )
    env["QLRF_SECRET_db_password"] = "from-the-environment"  # the vault's name wins
    running = worker(approle)
    state = _applied(path, env)
    log = running.stop()
    assert state["status"] == "succeeded", state
    assert log.count("logged in to the vault") == 1, log  # once per worker
    import hashlib

    lines = state["steps"]["digest"]["output"]["stdout"].splitlines()
    assert lines[0] == hashlib.sha256(KV_VALUE.encode()).hexdigest()
    assert lines[1] == "said: ***"  # masked like every secret
    assert state["steps"]["peek"]["status"] == "succeeded"  # it looked, and saw nothing
    peeked = state["steps"]["peek"]["output"]["stdout"].splitlines()
    assert all(line.startswith("cat: ") for line in peeked), peeked  # only refusals
    rid = state["workflow_id"]
    places = {
        "temporal and store": asyncio.run(recorded(temporal_address, postgres_uri, rid)),
        "worker log": log,
        "cli": "\n".join(
            [
                json.dumps(state),
                qlrf("history", rid, "--format", "json", env=env).stdout,
                qlrf("evidence", rid, env=env).stdout,
                qlrf("logs", rid, "digest", env=env).stdout,
            ]
        ),
    }
    assert found_in(places, KV_VALUE) == []
    role_id = Path(str(approle).replace("secrets.yaml", "role-id")).read_text().strip()
    secret_id = Path(str(approle).replace("secrets.yaml", "secret-id")).read_text().strip()
    assert found_in(places, role_id, secret_id) == []


def test_a_missing_key_a_missing_path_and_a_403_fail_once_naming_the_reference(
    bao, approle, worker, env, tmp_path
):
    steps = "".join(
        f"""\
  - id: {name.replace("_", "-")}
    type: shell
    on_failure: continue
    trigger_rule: all_done
    retry: {{max_attempts: 3, initial_interval: 1s}}
    with: {{command: [echo, "{{{{ secrets.{name} }}}}"]}}
"""
        for name in ("no_such_key", "no_such_path", "not_allowed")
    )
    worker(approle)
    state = _applied(_runbook(tmp_path, steps), env)
    found = {sid: state["steps"][sid] for sid in ("no-such-key", "no-such-path", "not-allowed")}
    for sid, step in found.items():
        assert step["status"] == "failed", (sid, step)
        assert step["attempts"] == 1, (sid, step)  # not retried: another attempt meets it again
    assert found["no-such-key"]["error"]["type"] == "SecretNotFound"
    assert "vault:secret/data/qlrf/db#nope" in found["no-such-key"]["error"]["message"]
    assert "has no key 'nope'" in found["no-such-key"]["error"]["message"]
    assert found["no-such-path"]["error"]["type"] == "SecretNotFound"
    assert "secret/data/qlrf/nothing" in found["no-such-path"]["error"]["message"]
    assert found["not-allowed"]["error"]["type"] == "SecretDenied"
    assert "403" in found["not-allowed"]["error"]["message"]
    assert KV_VALUE not in json.dumps(state) and DENIED_VALUE not in json.dumps(state)


def test_a_lease_is_revoked_when_its_step_ends(
    bao, approle, worker, env, tmp_path, postgres_uri, temporal_address
):
    go = tmp_path / "go"
    where, _ = _pg_parts(postgres_uri)
    path = _runbook(
        tmp_path,
        hold(go)
        + """\
  - id: login
    type: sql
    with:
      dsn: "postgresql://{{ secrets.pg.username }}:{{ secrets.pg.password }}@{{ inputs.where }}"
      query: "SELECT current_user AS who, session_user LIKE 'v-%' AS leased"
""",
        "inputs:\n  where: {type: string}\n",
    )
    running = worker(approle)
    assert _leases(bao) == []
    rid = _detached(path, env, f"where={where}")
    held = eventually(lambda: _leases(bao), "the step holds a lease")
    assert len(held) == 1 and _lease_alive(bao, held[0])
    logins = asyncio.run(_vault_roles(postgres_uri))
    assert len(logins) == 1  # the vault made a login: its name is a secret value too
    go.touch()
    state = _watched(rid, env)
    places = {
        "temporal and store": asyncio.run(recorded(temporal_address, postgres_uri, rid)),
        "worker log": running.stop(),
        "cli": json.dumps(state) + qlrf("logs", rid, "hold", env=env).stdout,
    }
    assert found_in(places, logins[0]) == []
    assert state["status"] == "succeeded", state
    rows = state["steps"]["login"]["output"]["rows"]
    assert rows[0]["leased"] is True  # logged in as the leased user
    assert rows[0]["who"] == "***"  # whose name is masked like the password
    # Both attempts' leases are revoked (bao lease lookup), and the logins dropped.
    assert not _lease_alive(bao, held[0])
    assert _leases(bao) == []
    assert asyncio.run(_vault_roles(postgres_uri)) == []


def _heartbeat_names_a_lease(address: str, rid: str) -> bool:
    """Whether the server holds a heartbeat of the run's step that names its lease: only
    then can a next attempt know of it (a worker killed before its first heartbeat left
    has told nobody)."""
    from temporalio.client import Client

    async def ask() -> bool:
        client = await Client.connect(address)
        pending = (await client.get_workflow_handle(rid).describe()).raw_description
        for activity in pending.pending_activities:
            payloads = activity.heartbeat_details.payloads
            if payloads and b"leases" in payloads[0].data:
                return True
        return False

    return asyncio.run(ask())


def test_a_lease_lost_with_a_killed_worker_is_revoked_by_the_next_attempt(
    bao, approle, worker, env, tmp_path, postgres_uri, temporal_address
):
    go = tmp_path / "go"
    path = _runbook(tmp_path, hold(go))
    first = worker(approle)
    rid = _detached(path, env)
    lost = eventually(lambda: _leases(bao), "attempt 1 holds a lease")
    assert len(lost) == 1
    eventually(
        lambda: _heartbeat_names_a_lease(temporal_address, rid), "attempt 1 heartbeats its lease"
    )
    first.kill()
    assert _lease_alive(bao, lost[0])  # nobody revoked it: the worker is gone
    worker(approle)
    # Attempt 2 revokes what attempt 1 held before it takes its own lease.
    eventually(lambda: not _lease_alive(bao, lost[0]), "attempt 2 revokes the lost lease", 90)
    second = eventually(lambda: [x for x in _leases(bao) if x != lost[0]], "attempt 2's lease")
    go.touch()
    state = _watched(rid, env)
    assert state["status"] == "succeeded", state
    assert state["steps"]["hold"]["attempts"] == 2
    assert not _lease_alive(bao, second[0]) and _leases(bao) == []


def test_a_forged_heartbeat_cannot_make_the_worker_revoke_a_lease(
    bao, approle, worker, env, tmp_path, temporal_address
):
    """Anyone who may use the namespace can heartbeat a running activity (the plain
    Temporal API). A heartbeat naming another lease, without the workers' HMAC, makes
    the next attempt revoke nothing: the other lease lives."""
    from temporalio.client import Client

    victim = bao.json("read", "database/creds/readonly")["lease_id"]  # someone else's
    go = tmp_path / "go"
    first = worker(approle)
    rid = _detached(_runbook(tmp_path, hold(go)), env)
    lost = eventually(lambda: [x for x in _leases(bao) if x != victim], "attempt 1's lease")
    first.kill()

    async def forge() -> None:
        client = await Client.connect(temporal_address)
        handle = client.get_workflow_handle(rid)
        pending = (await handle.describe()).raw_description.pending_activities
        activity_id = pending[0].activity_id
        forged = {"attempt": 1, "leases": [victim], "leases_mac": "0" * 64, "failures": []}
        await client.get_async_activity_handle(
            workflow_id=rid, run_id=None, activity_id=activity_id
        ).heartbeat(forged)

    asyncio.run(forge())
    try:
        later = worker(approle)
        eventually(
            lambda: [x for x in _leases(bao) if x not in (victim, *lost)], "attempt 2 starts", 90
        )
        assert _lease_alive(bao, victim)  # not revoked on a forged word
        go.touch()
        assert _watched(rid, env)["status"] == "succeeded"
        assert _lease_alive(bao, victim)
        assert "a heartbeat names leases this worker did not record" in later.stop()
    finally:
        # The lost attempt's lease (its real heartbeat was overwritten) and the victim.
        bao.run("lease", "revoke", "-prefix", "database/creds/readonly")


def test_an_ssh_step_logs_in_with_a_certificate_the_vault_signed(
    bao, approle, worker, env, tmp_path, hosts
):
    host = hosts["hosts"][0]
    path = _runbook(
        tmp_path,
        f"""\
  - id: remote
    type: ssh
    with:
      host: {host["address"]}
      port: {host["port"]}
      user: {host["user"]}
      certificate: {{vault_role: ops, ttl: 2m}}
      known_hosts: {hosts["known_hosts"]}
      command: [echo, certified]
""",
    )
    worker(approle)
    state = _applied(path, env)
    assert state["status"] == "succeeded", state
    assert state["steps"]["remote"]["output"]["stdout"] == "certified\n"
    # sshd accepted a certificate, not the hosts' authorized key.
    logged = (Path(host["home"]) / "sshd.log").read_text()
    assert "ED25519-CERT" in logged, logged[-800:]


@pytest.fixture
def lone_bao(tmp_path: Path) -> Iterator[Bao]:
    """An OpenBao of this test's own, to stop or to hand a short-lived token."""
    server = Bao.start(tmp_path / "lone-bao")
    server.run("kv", "put", "secret/qlrf/db", f"password={KV_VALUE}")
    yield server
    server.stop()


def _token_config(server: Bao, folder: Path, token: str) -> Path:
    token_file = folder / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return _config(folder, server.address, f"{{method: token, token_file: {token_file}}}")


def test_a_stopped_vault_gives_secret_unavailable_retried(lone_bao, worker, env, tmp_path):
    go = tmp_path / "go"
    read = """\
  - id: {sid}
    type: shell
    retry: {{max_attempts: 2, initial_interval: 1s}}
    with: {{command: [echo, "{{{{ secrets.db_password }}}}"]}}
"""
    path = _runbook(
        tmp_path,
        read.format(sid="before")
        + f"""\
  - id: wait
    type: shell
    with: {{script: "while [ ! -e {go} ]; do sleep 0.1; done"}}
"""
        + read.format(sid="after"),
    )
    worker(_token_config(lone_bao, tmp_path, lone_bao.root))
    rid = _detached(path, env)
    eventually(
        lambda: (
            json.loads(qlrf("status", rid, "--format", "json", env=env).stdout)["steps"]["before"][
                "status"
            ]
            == "succeeded"
        ),
        "the first read succeeds",
    )
    lone_bao.stop()
    go.touch()
    state = _watched(rid, env)
    assert state["status"] == "failed"
    after = state["steps"]["after"]
    assert after["error"]["type"] == "SecretUnavailable", after
    assert after["attempts"] == 2  # retried: a vault comes back
    assert "vault:secret/data/qlrf/db#password" in after["error"]["message"]
    assert KV_VALUE not in json.dumps(state)


def test_the_worker_renews_its_token_before_it_expires(lone_bao, worker, env, tmp_path):
    ttl = 6
    lone_bao.run("policy", "write", "qlrf-worker", "-", stdin=POLICY)
    created = lone_bao.json(
        "token", "create", "-policy=qlrf-worker", f"-ttl={ttl}s", "-explicit-max-ttl=10m"
    )["auth"]
    token, born = created["client_token"], time.monotonic()
    running = worker(_token_config(lone_bao, tmp_path, token))

    def renewed() -> bool:
        looked = lone_bao.json("token", "lookup", token)["data"]
        return bool(looked.get("last_renewal_time"))

    eventually(renewed, "the worker renews its token", 60)
    # Past the token's first TTL, a step still reads its secret.
    eventually(lambda: time.monotonic() > born + ttl + 1, "the token's first TTL passes", 30)
    path = _runbook(
        tmp_path,
        '  - id: read\n    type: shell\n    with: {command: [echo, "{{ secrets.db_password }}"]}\n',
    )
    state = _applied(path, env)
    assert state["status"] == "succeeded", state
    log = running.stop()
    assert "renewed the vault token" in log
    assert found_in({"worker log": log, "cli": json.dumps(state)}, token) == []


def _refused_start(env: dict[str, str], config: Path) -> subprocess.CompletedProcess[str]:
    """`qlrf-run worker` with this configuration, which must stop at once, cleanly."""
    started = subprocess.run(
        [EXE, "worker"],
        env={**os.environ, **env, "QLRF_SECRETS_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    return started


def test_a_worker_refuses_to_start_on_a_bad_configuration_naming_the_line(bao, env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"vault:\n  address: {bao.address}\n  auth: {{method: approle, role_id_file: /x}}\n"
        "secrets:\n  db: vault:secret/prod/db#password\n"
    )
    started = _refused_start(env, bad)
    assert f"{bad}:3:3" in started.stderr and "secret_id_file" in started.stderr, started.stderr
    assert f"{bad}:5:7" in started.stderr and "vault:MOUNT/data/PATH#KEY" in started.stderr

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "role-id").write_text("not-a-role\n")
    (wrong / "secret-id").write_text("not-a-secret\n")
    files = f"role_id_file: {wrong / 'role-id'}, secret_id_file: {wrong / 'secret-id'}"
    auth = f"{{method: approle, {files}}}"
    config = _config(wrong, bao.address, auth)
    refused = _refused_start(env, config)
    assert "cannot log in to the vault" in refused.stderr, refused.stderr
    assert "not-a-secret" not in refused.stderr


@pytest.mark.parametrize("ending", ["cancel", "timeout"])
def test_a_lease_is_revoked_when_its_run_is_cancelled_or_its_step_times_out(
    bao, approle, worker, env, tmp_path, postgres_uri, ending
):
    go = tmp_path / "go"  # never made: the step ends by the cancel or its timeout
    timeout = "{start_to_close: 3s}" if ending == "timeout" else "{heartbeat: 4s}"
    path = _runbook(tmp_path, hold(go, timeout=timeout, attempts=1))
    worker(approle)
    rid = _detached(path, env)
    held = eventually(lambda: _leases(bao), "the step holds a lease")
    if ending == "cancel":
        cancelled = qlrf("cancel", rid, env=env)
        assert cancelled.returncode == 0, cancelled.stderr
    state = _watched(rid, env)
    assert state["status"] == ("cancelled" if ending == "cancel" else "failed"), state
    eventually(lambda: not _lease_alive(bao, held[0]), f"the {ending} revokes the lease")
    assert _leases(bao) == [] and asyncio.run(_vault_roles(postgres_uri)) == []


def test_a_long_step_renews_its_lease(bao, approle, worker, env, tmp_path):
    """A lease of 4 s outlives it while the step runs, renewed; revoked after."""
    go = tmp_path / "go"
    worker(approle)
    rid = _detached(_runbook(tmp_path, hold(go, secret="pg_short")), env)
    held = eventually(lambda: _leases(bao, "short"), "the step holds a short lease")[0]
    born = time.monotonic()

    def renewed() -> bool:
        return bool(bao.json("lease", "lookup", held)["data"].get("last_renewal"))

    eventually(renewed, "the worker renews the lease", 30)
    eventually(lambda: time.monotonic() > born + 6, "the lease's first TTL passes", 30)
    assert _lease_alive(bao, held)
    go.touch()
    assert _watched(rid, env)["status"] == "succeeded"
    assert not _lease_alive(bao, held)


def test_a_sealed_vault_gives_secret_unavailable(lone_bao, worker, env, tmp_path):
    lone_bao.run("operator", "seal")
    path = _runbook(
        tmp_path,
        """\
  - id: read
    type: shell
    retry: {max_attempts: 2, initial_interval: 1s}
    with: {command: [echo, "{{ secrets.db_password }}"]}
""",
    )
    running = worker(_token_config(lone_bao, tmp_path, lone_bao.root))
    state = _applied(path, env)
    read = state["steps"]["read"]
    assert read["error"]["type"] == "SecretUnavailable" and read["attempts"] == 2, read
    assert "sealed or down" in read["error"]["message"]
    # The worker started anyway and said why steps would wait.
    assert "the vault is not reachable yet" in running.stop()


def _jwt(key: Any, claims: dict[str, Any]) -> str:
    """A JWT signed RS256 with `key` (what a workload identity provider hands out)."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    signed = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{part(signed)}"


def test_a_worker_logs_in_with_a_jwt(lone_bao, worker, env, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "issuer.pem").write_bytes(public)
    lone_bao.run("policy", "write", "qlrf-worker", "-", stdin=POLICY)
    lone_bao.run("auth", "enable", "jwt")
    lone_bao.run("write", "auth/jwt/config", f"jwt_validation_pubkeys=@{tmp_path / 'issuer.pem'}")
    lone_bao.run(
        "write",
        "auth/jwt/role/qlrf-worker",
        "role_type=jwt",
        "bound_audiences=qlrf",
        "user_claim=sub",
        "token_policies=qlrf-worker",
        "token_ttl=1h",
    )
    now = int(time.time())
    claims = {"sub": "worker-1", "aud": "qlrf", "iat": now, "nbf": now - 5, "exp": now + 600}
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(_jwt(key, claims))
    auth = f"{{method: jwt, role: qlrf-worker, jwt_file: {jwt_file}}}"
    running = worker(_config(tmp_path, lone_bao.address, auth))
    path = _runbook(
        tmp_path,
        '  - id: read\n    type: shell\n    with: {command: [echo, "{{ secrets.db_password }}"]}\n',
    )
    state = _applied(path, env)
    assert state["status"] == "succeeded", state
    assert state["steps"]["read"]["output"]["stdout"] == "***\n"
    assert "(jwt, token ttl" in running.stop()
