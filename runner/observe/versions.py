"""Worker Versioning: which build of the interpreter a worker is, and making it current.

A versioned worker pins every run it starts, the interpreter's and each batch's: a run
started on one build is replayed only by workers of that build, so upgrading workers
never changes the code that replays an open run. (The pin is the worker's default,
not the workflow's: the server refuses a behaviour from an unversioned worker, and
`apply` on the embedded server runs one.)
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from importlib import metadata
from pathlib import Path

from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from runner.errors import QlrfError
from runner.taskqueue import describe_queue

RUNNER = Path(__file__).resolve().parent.parent
# The code a workflow task runs: the interpreter and what it imports inside a run.
INTERPRETER_CODE = (
    "engine",
    "plan",
    "contract",
    "trust",
    "canonical.py",
    "templates.py",
    "template_budget.py",
)
# Longer than this, or with other characters, the server refuses a build id.
BUILD_ID_LIMIT = 255
REGISTER_SECONDS = 30.0


def interpreter_digest() -> str:
    """sha256 over the interpreter's source, so any change to it is a new build."""
    digest = hashlib.sha256()
    for name in INTERPRETER_CODE:
        root = RUNNER / name
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(RUNNER)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def default_build_id() -> str:
    try:
        version = metadata.version("qlrf-run")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"{version}-{interpreter_digest()}"


def checked_build_id(build_id: str) -> str:
    if not build_id or len(build_id) > BUILD_ID_LIMIT or any(c.isspace() for c in build_id):
        raise QlrfError(
            f"--build-id {build_id!r}: a build id is 1 to {BUILD_ID_LIMIT} characters "
            "without spaces, e.g. the release's version and commit"
        )
    return build_id


def deployment_config(deployment: str, build_id: str) -> WorkerDeploymentConfig:
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


async def current_build(client: Client, deployment: str) -> str | None:
    """The build id new runs of the deployment go to; None when none is current yet."""
    try:
        found = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment),
            timeout=timedelta(seconds=5),
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise QlrfError(f"the server refused deployment {deployment!r}: {exc.message}") from None
    current = found.worker_deployment_info.routing_config.current_deployment_version
    return current.build_id or None


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    """Route new runs to this build; waits until the server has seen the build poll.

    QlrfError when the server refuses the build (say, a server without Worker
    Versioning), naming the reason it gave.
    """
    deadline = asyncio.get_running_loop().time() + REGISTER_SECONDS
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build_id,
                    identity=client.identity,
                ),
                timeout=timedelta(seconds=5),
            )
            return
        except RPCError as exc:
            # The version exists once a worker of it has polled: wait for that.
            waiting = exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
            if not waiting or asyncio.get_running_loop().time() > deadline:
                raise QlrfError(
                    f"the server refused build {build_id!r} of deployment {deployment!r}: "
                    f"{exc.message}"
                ) from None
        await asyncio.sleep(0.5)


async def queue_deployment(client: Client, queue: str) -> str | None:
    """The Worker Deployment whose current build takes the task queue's new runs; None
    while the queue is unversioned (any worker takes them)."""
    try:
        found = await describe_queue(client, queue)
    except RPCError:
        return None  # cannot tell: the run's own start says more
    current = found.versioning_info.current_deployment_version
    return current.deployment_name or None


async def local_takeover(client: Client, queue: str) -> WorkerDeploymentConfig | None:
    """For `apply` on the embedded server: when a versioned worker once made itself
    current on the task queue (and may be long gone), an unversioned worker would never
    be given the run. The in-process worker then joins that deployment as this build and
    becomes current (see `take_over`); otherwise it stays unversioned."""
    deployment = await queue_deployment(client, queue)
    if deployment is None:
        return None
    return deployment_config(deployment, default_build_id())


async def take_over(client: Client, config: WorkerDeploymentConfig) -> None:
    version = config.version
    if await current_build(client, version.deployment_name) != version.build_id:
        await make_current(client, version.deployment_name, version.build_id)
