"""The worker's composition root: the engine's workflows, every step type's activity,
the run store's writer and the gate notifier, on one task queue.

It sits above the engine, the steps and the store, which know nothing of each
other: the engine names activities, this module supplies them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from runner.catalog.registry import Registry
from runner.config import groups, notify_webhook
from runner.contract import (
    GATE_NOTIFY_ACTIVITY,
    NOTIFY_DELIVER_ACTIVITY,
    START_ADMISSION_ACTIVITY,
    STORE_ACTIVITY,
    TASK_QUEUE,
)
from runner.dsl import policy_config, secrets_config
from runner.dsl.definitions import default_registry
from runner.engine.batch import BatchWorkflow
from runner.engine.interpreter import RunbookWorkflow
from runner.engine.lock import LockWorkflow
from runner.errors import QlrfError
from runner.local.postgres import store_enabled
from runner.notify import config as notify_config
from runner.notify.deliver import deliverer
from runner.observe.health import Health
from runner.observe.link import HoldResults, ServerLink
from runner.observe.tracing import worker_interceptors
from runner.steps import internal_key, sandbox
from runner.steps.activities import for_registry
from runner.steps.admission import start_admission
from runner.steps.gate_notify import gate_notifier
from runner.steps.inventory import inventory_open, inventory_page
from runner.steps.leases import LeaseInterceptor
from runner.steps.locks import lock_request, lock_watch
from runner.steps.secrets import unavailable
from runner.steps.trust import read_trust_file, trust_snapshot
from runner.store.activity import store_record
from runner.trust import internal
from runner.vault import client as vault

# The run's workflow, the child that runs each batch of a fan-out, and the mutex of
# each lock key.
WORKFLOWS = [RunbookWorkflow, BatchWorkflow, LockWorkflow]
HEARTBEAT_THROTTLE = timedelta(seconds=5)
STICKY_TIMEOUT = timedelta(seconds=5)


def sandboxed_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, with Jinja2 and the contract passed through.

    Jinja2 builds a threading.Lock and imports its runtime lazily, which the sandbox
    refuses; it is deterministic once `random` and `lipsum` are removed, as
    runner/templates.py does. The contract (runner/contract/) is plain data, and its
    dataclasses must be the very classes the SDK decodes workflow arguments into.
    `cryptography` (the run checks SSH signatures with it) holds a Rust extension that
    cannot be loaded twice in one process: re-imported in the sandbox, the first
    signature that fails to verify aborted the worker.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "jinja2", "markupsafe", "runner.contract", "cryptography"
        )
    )


def workflow_runner() -> WorkflowRunner:
    """Unsandboxed by default; QLRF_WORKFLOW_SANDBOX=1 turns the sandbox on.

    The sandbox guards hand-written workflow code against accidental clocks, randomness
    and I/O, at the price of re-importing the workflow module for every run. Here the
    only workflow code is this interpreter (runbooks are data), and measured with
    bench/interpreter_vs_handwritten.py the sandbox cost it 13% of the throughput of a
    hand-written workflow, and half the gain of in-workflow steps. Determinism is kept
    by the interpreter's own rules (no I/O, time only from workflow.now()) and checked
    in CI: the golden histories replay under the sandbox too, which fails on a
    forbidden call.
    """
    if os.environ.get("QLRF_WORKFLOW_SANDBOX", "").lower() in ("1", "true", "yes"):
        return sandboxed_runner()
    return UnsandboxedWorkflowRunner()


def build_worker(
    client: Client,
    *,
    task_queue: str = TASK_QUEUE,
    registry: Registry | None = None,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int | None = None,
    activity_overrides: dict[str, Callable[..., Any]] | None = None,
    deployment: WorkerDeploymentConfig | None = None,
    workflows: list[type] | None = None,
    extra_activities: list[Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for every step type in the registry; fails at once if one has no activity."""
    # Signed mode with a trust file that cannot be used: refuse now, naming the
    # variable, rather than fail every run's first act. Signed mode runs every step in
    # the sandbox (runner/steps/sandbox.py); a worker that cannot have it refuses too.
    trust = read_trust_file()
    signed = trust["mode"] == "signed"
    sandbox.use(sandbox.sandbox(signed=signed))
    if signed and not store_enabled():
        raise QlrfError(
            "signed mode keeps what proves each start (spent signatures, redrive claims) in "
            "the run store, and QLRF_STORE=off turns it off; turn the store on"
        )
    key, _ = internal_key.load(signed=signed)
    internal.configure(key)
    # A vault configuration that cannot be used stops the worker here, naming the
    # file, line and key; the login is once per worker, kept alive by _helpers.
    vault.configure(secrets_config.load())
    warning = vault.start_session()
    if warning:
        _stderr(f"warning: {warning}")
    # Channels that cannot work (an unknown kind, a secret not set here, an address
    # that is none) stop the worker here too, naming the file, line and key.
    notifying = notify_config.load(missing_secret=unavailable)
    # A policy that cannot be used (it does not parse, names a group not defined, holds
    # a bad window or pattern) stops the worker too; it means something in signed mode only.
    if policy_config.load(groups()[0]) is not None and not signed:
        raise QlrfError(
            f"{policy_config.VARIABLE} is set, but this worker is in claimed mode, where "
            "anyone may give any name: set QLRF_ALLOWED_SIGNERS (docs/trust.md), or unset "
            f"{policy_config.VARIABLE}"
        )
    activities: list[Callable[..., Any]] = [
        *for_registry(registry or default_registry(), activity_overrides),
        (activity_overrides or {}).get(GATE_NOTIFY_ACTIVITY) or gate_notifier(notify_webhook),
        (activity_overrides or {}).get(STORE_ACTIVITY, store_record),
        lock_request,
        lock_watch,
        inventory_open,
        inventory_page,
        trust_snapshot(
            lambda: groups()[0],
            lambda: notifying.snapshot() if notifying is not None else None,
            current_policy,
        ),
        (activity_overrides or {}).get(NOTIFY_DELIVER_ACTIVITY) or deliverer(lambda: notifying),
        (activity_overrides or {}).get(START_ADMISSION_ACTIVITY, start_admission),
        *(extra_activities or []),  # `qlrf-run test` delivers its decisions with one
    ]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows or WORKFLOWS,  # another build's, in the upgrade tests
        activities=activities,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        workflow_runner=workflow_runner(),
        # Give running shell steps time to be cancelled cleanly on shutdown.
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A cancel (or the run's timeout) reaches a running step with its next
        # heartbeat to the server; without a cap the SDK holds heartbeats back for up
        # to 0.8x the step's heartbeat timeout (24 s for shell).
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        # A run cached by a worker that died is handed to another after this long
        # (the SDK's default is 10 s): decisions and queries wait no longer than that.
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        # Versioned workers take only the runs of their build (runs are Pinned).
        deployment_config=deployment,
        # A step that finished while the server was away is reported once it is back.
        # Dynamic secrets are revoked with the attempt that leased them.
        interceptors=[*worker_interceptors(), HoldResults(ServerLink(client)), LeaseInterceptor()],
    )


_POLICY: tuple[tuple[str, int, int, int], dict[str, Any] | None] | None = None


def current_policy() -> dict[str, Any] | None:
    """QLRF_POLICY as a run takes it at its start: read again when the file (or the
    groups file) changes, so an edited policy holds from the next run on."""
    global _POLICY
    path = os.environ.get(policy_config.VARIABLE, "").strip()
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise QlrfError(f"{policy_config.VARIABLE} {path}: {exc.strerror}") from None
    known = groups()[0]
    key = (path, stat.st_mtime_ns, stat.st_size, hash(repr(sorted(known.items()))))
    if _POLICY is None or _POLICY[0] != key:
        _POLICY = (key, policy_config.load(known, path))
    return _POLICY[1]


def protect_process() -> None:
    """For a process that runs a worker, before it starts anything: no process of its
    user may read its memory or environment (non-dumpable), and the secrets given in its
    environment move into its memory, so that nothing it starts inherits them."""
    from runner.steps.secrets import capture_environment

    sandbox.harden_worker()
    capture_environment()
    internal_key.capture()


RESTART_CHECK_SECONDS = 1.0
RETIRE_SECONDS = 15.0
# A worker started before Temporal tries again, waiting longer each time up to this.
CONNECT_BACKOFF_MAX = 30.0


async def connect_patiently(
    where: Any,
    stop: asyncio.Event,
    health: Health | None = None,
    say: Callable[[str], None] | None = None,
) -> Client | None:
    """A client of `where`, waiting for Temporal as long as it takes: a worker is often
    started before the server it serves (a reboot, a compose file). One line per
    attempt says why it waits; /readyz answers 503 meanwhile, /healthz 200. None when
    `stop` is set first. A malformed setting is not waited for: it fails at once."""
    from runner.client.connect import Unreachable, connect

    tell = say or _stderr
    delay = 1.0
    while not stop.is_set():
        try:
            return await connect(where)
        except Unreachable as exc:
            if health is not None:
                health.unready(f"waiting for Temporal: {exc}")
            tell(f"waiting for Temporal: {exc}; trying again in {delay:.0f}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, CONNECT_BACKOFF_MAX)
    return None


def _stderr(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


async def _moved(address: str) -> None:
    """Return once the embedded server answers at another address than `address`.

    A restart keeps the server's address (runner/local/temporal.py), and this worker's
    connection then reconnects by itself, delivering every step that finished while
    the server was away: nothing is done here. Only a server started afresh elsewhere
    (its state removed by hand) needs a new worker."""
    from runner.local.temporal import EmbeddedServer

    server = EmbeddedServer()
    while True:
        await asyncio.sleep(RESTART_CHECK_SECONDS)
        info = await asyncio.to_thread(server.read)
        if info is not None and info.address != address and server.healthy(info):
            return


@dataclass
class Operations:
    """What a long-running worker offers those who run it (`qlrf-run worker` options)."""

    health: Health | None = None  # answer /readyz from what the server sees
    metrics: bool = False  # keep the gates gauge (the runtime serves the rest)
    deployment: WorkerDeploymentConfig | None = None  # a versioned worker
    # Route new runs to this build: True always, None only when none is current yet.
    make_current: bool | None = None


async def serve(
    stop: asyncio.Event,
    *,
    task_queue: str = TASK_QUEUE,
    max_concurrent_activities: int = 100,
    on_connect: Callable[[Any], None] | None = None,
    operations: Operations | None = None,
) -> None:
    """Run a worker until `stop` is set.

    A worker started before Temporal waits for it (connect_patiently). Against the
    embedded dev server, a restart keeps the server's address and the connection
    reconnects by itself; only when the server was started afresh at another address
    does a new worker start there, the old one retired in the background.
    """
    from runner.client.connect import target

    ops = operations or Operations()
    retiring: set[asyncio.Task[None]] = set()
    running: tuple[Worker, asyncio.Task[None]] | None = None
    try:
        while not stop.is_set():
            where = await asyncio.to_thread(target, ui=False)
            client = await connect_patiently(where, stop, ops.health)
            if client is None:
                break  # stopped while Temporal was still away
            worker = build_worker(
                client,
                task_queue=task_queue,
                max_concurrent_activities=max_concurrent_activities,
                deployment=ops.deployment,
            )
            task = asyncio.create_task(worker.run())
            if running is not None:
                retired = asyncio.create_task(_retire(*running))
                retiring.add(retired)
                retired.add_done_callback(retiring.discard)
            running = (worker, task)
            if on_connect is not None:
                on_connect(where)
            done = asyncio.Event()
            helpers = _helpers(client, task_queue, ops, done)
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()), task]
            waiters += helpers.failing
            if where.embedded:
                waiters.append(asyncio.ensure_future(_moved(where.address)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                done.set()
                if task.done():
                    _worker_result(task, ops)  # a worker that failed on its own: say why
                for failed in helpers.failing:
                    if failed.done():
                        failed.result()  # say why (the server refused the build, ...)
            finally:
                for waiter in waiters:
                    if waiter is not task and not waiter.done():
                        waiter.cancel()
                await helpers.close()
    finally:
        if running is not None:
            await _retire(*running)
        for retired in list(retiring):
            await retired


def _worker_result(task: asyncio.Task[None], ops: Operations) -> None:
    try:
        task.result()
    except RPCError as exc:
        if ops.deployment is None:
            raise
        version = ops.deployment.version
        raise QlrfError(
            f"the server refused build {version.build_id!r} of deployment "
            f"{version.deployment_name!r}: {exc.message}"
        ) from None


@dataclass
class _Helpers:
    quiet: list[asyncio.Task[None]]  # end with the worker
    failing: list[asyncio.Task[None]]  # their failure stops the worker

    async def close(self) -> None:
        for helper in (*self.quiet, *self.failing):
            helper.cancel()
        for helper in (*self.quiet, *self.failing):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await helper


def _helpers(client: Client, queue: str, ops: Operations, done: asyncio.Event) -> _Helpers:
    from runner.observe.gauges import keep_gates_gauge
    from runner.observe.readiness import watch_readiness

    quiet: list[asyncio.Task[None]] = []
    failing: list[asyncio.Task[None]] = []
    if ops.health is not None:
        quiet.append(
            asyncio.create_task(watch_readiness(client, queue, client.identity, ops.health, done))
        )
    if ops.metrics:
        quiet.append(asyncio.create_task(keep_gates_gauge(client, done)))
    if ops.deployment is not None:
        failing.append(asyncio.create_task(_route(client, ops.deployment, ops.make_current)))
    if vault.configured() is not None:
        quiet.append(asyncio.create_task(vault.keep_token_alive(done)))
    return _Helpers(quiet, failing)


async def _route(client: Client, deployment: WorkerDeploymentConfig, always: bool | None) -> None:
    """Make this build current when asked to, or when the deployment has none yet (its
    first worker); otherwise new runs stay with the current build until an operator
    moves them (docs/operations.md)."""
    from runner.observe.versions import current_build, make_current

    name, build = deployment.version.deployment_name, deployment.version.build_id
    if always or await current_build(client, name) is None:
        await make_current(client, name, build)
    await asyncio.Event().wait()  # stays until the worker ends; a failure ends it


async def _retire(worker: Worker, task: asyncio.Task[None]) -> None:
    """Shut a worker down: running activities get their chance to end or be cancelled.

    A worker of a server that went away may wait on polls that never answer; it is
    given up on after a while (the process ends, or the next worker has taken over).
    """
    with contextlib.suppress(Exception):
        if not task.done():
            await asyncio.wait_for(worker.shutdown(), RETIRE_SECONDS)
        await asyncio.wait_for(task, RETIRE_SECONDS)
