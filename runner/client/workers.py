"""Whether a worker serves a run now, asked without waiting on one.

The task queue's pollers say at once when no worker is there at all. A worker
long-polls for a minute at a time, so one that stopped a moment ago is still
listed for that long. The server's list of workers (their heartbeats) tells those
apart: a worker that stops says so as it shuts down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import WorkerStatus
from temporalio.api.workflowservice.v1 import ListWorkersRequest
from temporalio.client import Client
from temporalio.service import RPCError

from runner.taskqueue import describe_queue

# A worker long-polls for a minute at a time; one not seen for longer is gone.
POLLER_SEEN_SECONDS = 70
METADATA_QUERY = "__temporal_workflow_metadata"  # answered by the SDK in every workflow
_STOPPING = (WorkerStatus.WORKER_STATUS_SHUTTING_DOWN, WorkerStatus.WORKER_STATUS_SHUTDOWN)


def no_worker(queue: str) -> str:
    return (
        f"no worker is polling task queue {queue}; start one with `qlrf-run worker` "
        "(the run waits meanwhile, and loses nothing)"
    )


@dataclass
class Pollers:
    """The workers that polled a task queue lately, by identity, with the seconds since
    each last did; `known` is False when the server could not say."""

    ages: dict[str, float]
    known: bool = True

    @property
    def any(self) -> bool:
        return not self.known or bool(self.ages)

    @property
    def youngest(self) -> float:
        return min(self.ages.values()) if self.ages else 0.0


async def pollers(client: Client, queue: str) -> Pollers:
    """Who polled the task queue for workflow tasks in the last POLLER_SEEN_SECONDS."""
    try:
        found = await describe_queue(client, queue)
    except RPCError:
        return Pollers({}, known=False)  # cannot tell: let the call itself find out
    now = datetime.now(UTC)
    ages: dict[str, float] = {}
    for poller in found.pollers:
        age = (now - poller.last_access_time.ToDatetime().replace(tzinfo=UTC)).total_seconds()
        if age < POLLER_SEEN_SECONDS:
            ages[poller.identity] = min(max(0.0, age), ages.get(poller.identity, age))
    return Pollers(ages)


async def last_poll(client: Client, queue: str) -> float | None:
    """Seconds since a worker last polled the task queue; None when none did lately."""
    found = await pollers(client, queue)
    return found.youngest if found.any else None


async def workers_polling(client: Client, queue: str) -> bool:
    """Whether a worker has polled the task queue for workflow tasks lately. A worker
    long-polls for a minute at a time, so one that stopped a moment ago still counts."""
    return (await pollers(client, queue)).any


async def all_stopping(client: Client, queue: str, identities: set[str]) -> bool:
    """Whether every one of these pollers of `queue` has told the server it is shutting
    down (or has shut down). False when the server cannot say, or one runs."""
    if not identities:
        return False
    stopping = await _stopping(client, queue)
    return stopping is not None and identities <= stopping


async def serving(client: Client, queue: str) -> list[str]:
    """The workers (pid@host) that poll `queue` now: those seen lately, less those that
    told the server they are stopping. [] when none was seen."""
    seen = await pollers(client, queue)
    if not seen.ages:
        return []
    # A server without the list of workers: every poller seen lately counts.
    return sorted(set(seen.ages) - (await _stopping(client, queue) or set()))


async def _stopping(client: Client, queue: str) -> set[str] | None:
    """The workers of `queue` that told the server they are shutting down (or have
    shut down) and run no other instance under the same identity; None when the
    server keeps no list of workers."""
    request = ListWorkersRequest(namespace=client.namespace, query=f"TaskQueue = '{queue}'")
    try:
        found = await client.workflow_service.list_workers(request)
    except RPCError:
        return None
    stopping: set[str] = set()
    running: set[str] = set()
    for worker in found.workers:
        if worker.task_queue == queue:
            (stopping if worker.status in _STOPPING else running).add(worker.worker_identity)
    return stopping - running
