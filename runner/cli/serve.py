"""`qlrf-run worker` and `qlrf-run dev`: long-running processes."""

from __future__ import annotations

import signal
from typing import Any

import typer

from runner.cli.common import err, examples, out
from runner.errors import QlrfError


def worker(
    concurrency: int = typer.Option(100, "--concurrency", help="Activities at once"),
    task_queue: str | None = typer.Option(
        None, "--task-queue", help="Task queue (default: QLRF_TASK_QUEUE, else ql-rf-orchestrator)"
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve Prometheus metrics on this port at /metrics (the SDK's and qlrf_*)",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        "--metrics-host",
        help="The address metrics listen on (0.0.0.0: every interface, as in a container)",
    ),
    health_port: int | None = typer.Option(
        None,
        "--health-port",
        min=1,
        max=65535,
        help="Serve /healthz (alive) and /readyz (polling Temporal) on this port",
    ),
    health_host: str = typer.Option(
        "127.0.0.1",
        "--health-host",
        help="The address the probes listen on (0.0.0.0: every interface, as in a container)",
    ),
    deployment: str | None = typer.Option(
        None,
        "--deployment",
        envvar="QLRF_DEPLOYMENT",
        help="Worker Deployment name: runs are pinned to the build that started them",
    ),
    build_id: str | None = typer.Option(
        None,
        "--build-id",
        envvar="QLRF_BUILD_ID",
        help="This worker's build (default: the package version and the interpreter's digest)",
    ),
    current: bool = typer.Option(
        False,
        "--current",
        help="Send new runs to this build now (without it, only a deployment's first build is)",
    ),
) -> None:
    """Run a worker until SIGINT or SIGTERM; start more of them anywhere to scale out."""
    from runner.client.connect import task_queue as default_queue
    from runner.observe.health import Health, serve_health
    from runner.observe.runtime import configure_runtime
    from runner.observe.versions import checked_build_id, default_build_id, deployment_config
    from runner.worker import Operations, protect_process, serve

    protect_process()  # first: before it starts any process

    queue = task_queue or default_queue()
    if (build_id or current) and not deployment:
        raise QlrfError("--build-id and --current need --deployment NAME (or QLRF_DEPLOYMENT)")
    ops = Operations(metrics=metrics_port is not None, make_current=current or None)
    if deployment:
        build = checked_build_id(build_id or default_build_id())
        ops.deployment = deployment_config(deployment, build)
    # Both ports are taken before anything connects: a clash stops the worker at once.
    configure_runtime(metrics_port, metrics_host)
    if health_port is not None:
        ops.health = Health()
        serve_health(ops.health, health_port, health_host)

    async def go() -> None:
        import logging

        from runner.cli import sdk_logging

        # A worker is a daemon: its log is where operators look for the SDK's warnings.
        sdk_logging.configure(logging.WARNING)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        await _check_store()

        def connected(where: Any) -> None:
            extra = ""
            if ops.deployment is not None:
                version = ops.deployment.version
                extra = f", deployment {version.deployment_name} build {version.build_id}"
            from runner.steps import internal_key, sandbox
            from runner.trust import internal

            out(
                f"worker on {where.address} ({where.namespace}), task queue {queue}{extra}; "
                f"{sandbox.current().why}; internal key {internal.key_id()} from "
                f"{internal_key.source()}; Ctrl-C stops it"
            )
            out(f"  {settings(metrics_port, health_port)}")

        await serve(
            stop,
            task_queue=queue,
            max_concurrent_activities=concurrency,
            on_connect=connected,
            operations=ops,
        )
        out("stopped: running activities were given a chance to finish or be cancelled")

    import asyncio

    asyncio.run(go())


async def _check_store() -> None:
    """A malformed QLRF_DATABASE_URL stops the worker at once; a store that is down only
    warns: the worker's writes retry until it is back, and nothing is lost."""
    from runner.errors import QlrfError
    from runner.local.postgres import database_url, store_enabled
    from runner.store.reach import check_store

    if not store_enabled():
        return
    url = database_url()
    try:
        await check_store(url)
    except QlrfError as exc:
        err(f"warning: {exc}; runs go on, and each waits at its end until the store has its events")


def dev_command(
    detach: bool = typer.Option(False, "--detach", help="Start it and return"),
    stop: bool = typer.Option(False, "--stop", help="Stop the embedded server"),
    web_port: int = typer.Option(
        8089, "--web-port", min=1, max=65535, help="The approvals pages' port (qlrf-run serve)"
    ),
) -> None:
    """The embedded Temporal dev server with its UI, in the foreground until Ctrl-C.

    Other qlrf-run commands use it meanwhile. A server that was already running
    (started by `apply`) is left running when this command ends.
    """
    import os
    import time

    from runner.local.temporal import EmbeddedServer

    server = EmbeddedServer()
    if stop:
        from runner.local.postgres import stop_embedded

        out("stopped" if server.stop() else "not running")
        if not os.environ.get("QLRF_DATABASE_URL") and stop_embedded():
            out("stopped the embedded PostgreSQL")
        return
    before = server.read()
    info = server.ensure(ui=True)
    started_here = before is None or before.pid != info.pid
    out(f"Temporal dev server: {info.address}  (state in {server.dir})")
    if info.ui_url:
        out(f"Temporal UI:         {info.ui_url}")
    from runner.local.postgres import database_url, store_enabled

    if store_enabled():
        out(f"Run store:           {database_url()}")
    if detach:
        out("running in the background; stop it with: qlrf-run dev --stop")
        out(f"the approvals pages: qlrf-run serve --port {web_port}")
        return
    web = _approvals_service(info.address, web_port)
    out("Ctrl-C stops it" if started_here else "it was already running; Ctrl-C leaves it so")
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    while not stopping and server.healthy(server.read()):
        time.sleep(0.5)
    if web is not None:
        web.terminate()
        web.wait(10)
    current = server.read()
    if started_here and current is not None and current.pid == info.pid:
        server.stop()
        out("stopped")


def _approvals_service(address: str, port: int) -> Any:
    """`qlrf-run serve` beside the dev server, until `dev` ends; None (and why) when the
    port is taken (a service already runs there)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            out(f"Approvals pages:     http://127.0.0.1:{port} (already served there)")
            return None
    exe = os.path.join(os.path.dirname(sys.executable), "qlrf-run")
    command = [exe] if os.path.exists(exe) else [sys.executable, "-m", "runner.cli.app"]
    env = {**os.environ, "QLRF_TEMPORAL_ADDRESS": address}
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    out(f"Approvals pages:     http://127.0.0.1:{port} (qlrf-run serve)")
    return proc


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run worker",
            "QLRF_TEMPORAL_ADDRESS=temporal:7233 qlrf-run worker --concurrency 50",
            "qlrf-run worker --metrics-port 9464 --health-port 8081",
            "qlrf-run worker --metrics-port 9464 --metrics-host 0.0.0.0  # in a container",
            "qlrf-run worker --deployment qlrf --build-id 2026-12-01.1 --current",
        )
    )(worker)
    app.command(
        "dev",
        epilog=examples(
            "qlrf-run dev",
            "qlrf-run dev --web-port 8090",
            "qlrf-run dev --detach",
            "qlrf-run dev --stop",
        ),
    )(dev_command)


def settings(metrics_port: int | None, health_port: int | None) -> str:
    """What this worker runs with, in one line: whom it trusts, whether it seals, the
    files it reads, and its ports. Two workers of one queue should print the same."""
    import os

    from runner import config
    from runner.errors import QlrfError
    from runner.steps.trust import ALLOWED_SIGNERS, read_trust_file
    from runner.store.chain import SEAL_KEY
    from runner.vault import client as vault

    trust = read_trust_file()  # a bad file stopped the worker before it got here
    if trust["mode"] == "signed":
        identity = f"identity signed ({trust['path']}, sha256 {str(trust['sha256'])[:12]})"
    else:
        identity = f"identity claimed (no {ALLOWED_SIGNERS}: names are taken as given)"
    seal = os.environ.get(SEAL_KEY, "").strip()
    sealing = f"seal key {seal}" if seal else f"no seal key (evidence unsealed; {SEAL_KEY})"
    try:
        known, source = config.groups()
        groups = f"{len(known)} group(s) from {source}" if known else "no groups"
    except QlrfError as exc:  # shown, not fatal: a run that names a group is refused then
        groups = f"groups unreadable: {exc}"
    secrets = os.environ.get("QLRF_SECRETS_FILE")
    sources = [f"secrets file {secrets}" if secrets else "secrets from QLRF_SECRET_*"]
    vaulted = vault.configured()
    if vaulted is not None:
        sources.insert(
            0, f"{len(vaulted.secrets)} secret(s) from the vault at {vaulted.vault.address}"
        )
    elif not secrets:
        sources[0] += " only"
    webhook = config.notify_webhook()
    from runner.worker import current_policy

    found = current_policy()  # a bad policy stopped the worker before it got here
    policy = (
        f"policy {found['path']} (sha256 {str(found['sha256'])[:12]}, "
        f"{len(found['rules'])} rule(s){', proposals' if found.get('proposals') else ''})"
        if found is not None
        else "no policy"
    )
    return "; ".join(
        [
            identity,
            sealing,
            groups,
            policy,
            ", ".join(sources),
            "notify webhook set" if webhook else "no notify webhook",
            f"metrics :{metrics_port}" if metrics_port is not None else "no metrics port",
            f"health :{health_port}" if health_port is not None else "no health port",
        ]
    )
