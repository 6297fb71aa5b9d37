"""The worker: RunbookWorkflow plus the activity of every registered step type."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from runner.engine.interpreter import RunbookWorkflow
from runner.engine.model import TASK_QUEUE
from runner.steps.activities import for_registry
from runner.steps.definitions import default_registry
from runner.steps.registry import Registry


def workflow_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, with Jinja2 passed through (see TEMPORAL.md).

    Jinja2 builds a threading.Lock and imports its runtime lazily, which the sandbox
    refuses; it is deterministic once `random` and `lipsum` are removed, as
    runner/templates.py does.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("jinja2", "markupsafe")
    )


def build_worker(
    client: Client,
    *,
    task_queue: str = TASK_QUEUE,
    registry: Registry | None = None,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int | None = None,
    activity_overrides: dict[str, Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for every step type in the registry; fails at once if one has no activity."""
    activities = for_registry(registry or default_registry(), activity_overrides)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunbookWorkflow],
        activities=activities,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        workflow_runner=workflow_runner(),
        # Give running shell steps time to be cancelled cleanly on shutdown.
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
