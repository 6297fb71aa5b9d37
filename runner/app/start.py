"""Starting a run from a compiled runbook, as `apply` does: reach the run store first
(a broken store fails here, before any run), connect, start the run or attach to the
open one with the same id, and build the worker that runs it in this process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from runner.app.context import Context, connected
from runner.app.provenance import provenance
from runner.client.connect import task_queue
from runner.client.runs import start as start_run
from runner.client.workers import serving
from runner.local.postgres import database_url, store_enabled
from runner.pipeline import Compiled
from runner.store.reach import check_store


@dataclass
class StartRequest:
    compiled: Compiled
    user: str
    run_id: str | None = None
    worker: bool = True  # run a worker in this process
    follow: bool = True  # the caller follows the run (a local worker takes over first)
    # Where the runbook came from; None: read from its file's git checkout now.
    provenance: dict[str, Any] | None = None


@dataclass
class Started:
    ctx: Context
    handle: WorkflowHandle[Any, Any]
    attached: bool  # the same runbook with the same inputs was open: its run
    worker: Worker | None  # to run while following; None when others serve the run
    first: Callable[[], Awaitable[None]] | None  # to await once the worker runs
    # Other workers polling the run's task queue (pid@host): its steps may run there,
    # with their secrets, seal key and trust rather than this process's.
    others: list[str] = field(default_factory=list)

    @property
    def ids(self) -> dict[str, str | None]:
        return {
            "run_id": self.handle.id,
            "temporal_run_id": self.handle.result_run_id or self.handle.first_execution_run_id,
        }


def runbook_provenance(compiled: Compiled) -> dict[str, Any]:
    """The runbook file's git provenance (runner/app/provenance.py), for the start claim."""
    return provenance(compiled.plan.source_file, compiled.source)


async def prepare_store(compiled: Compiled) -> bool:
    """Whether the run is recorded; the store is reached, and the file kept, first."""
    if not store_enabled():
        return False
    await check_store(database_url(), (compiled.source_sha256, compiled.source_text))
    return True


async def start(ask: StartRequest) -> Started:
    from runner.observe.versions import local_takeover, take_over
    from runner.worker import build_worker

    compiled = ask.compiled
    record = await prepare_store(compiled)
    ctx = await connected()
    deployment = None
    if ctx.where.embedded and ask.worker and ask.follow:
        # This process's worker takes the embedded server's runs over from an older one.
        deployment = await local_takeover(ctx.client, task_queue())
    handle, attached = await start_run(
        ctx.client,
        compiled.plan,
        compiled.inputs,
        ask.user,
        workflow_id=ask.run_id,
        definition_sha256=compiled.source_sha256,  # of the bytes compiled, read once
        definition_file=compiled.plan.source_file,
        record=record,
        task_queue=task_queue(),
        provenance=ask.provenance or runbook_provenance(compiled),
    )
    worker = None
    others: list[str] = []
    if ask.worker and ask.follow:
        others = await serving(ctx.client, task_queue())  # before this process's polls
        worker = build_worker(ctx.client, task_queue=task_queue(), deployment=deployment)

    if deployment is None:
        return Started(ctx, handle, attached, worker, None, others)
    taking = deployment

    async def first() -> None:
        await take_over(ctx.client, taking)

    return Started(ctx, handle, attached, worker, first, others)
