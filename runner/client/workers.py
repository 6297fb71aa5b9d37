"""Whether a worker serves a run now, asked without waiting on one.

The task queue's pollers say at once when no worker is there at all. A worker
long-polls for a minute at a time, so one that stopped a moment ago is still
listed for that long; before an Update, a built-in query then tells the two apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeTaskQueueResponse
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

# A worker long-polls for a minute at a time; one not seen for longer is gone.
POLLER_SEEN_SECONDS = 70
# How long a run may take to answer the probe of worker_answers: the server gives up
# a dead worker's sticky queue after STICKY_SECONDS (runner/worker.py), then asks
# any worker of the task queue.
PROBE_SECONDS = 15.0
METADATA_QUERY = "__temporal_workflow_metadata"  # answered by the SDK in every workflow


def no_worker(queue: str) -> str:
    return (
        f"no worker is polling task queue {queue}; start one with `qlrf-run worker` "
        "(the run waits meanwhile, and loses nothing)"
    )


async def describe_queue(client: Client, queue: str) -> DescribeTaskQueueResponse:
    """The task queue's workflow pollers and versioning, as the server sees them."""
    return await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=5),
    )


async def last_poll(client: Client, queue: str) -> float | None:
    """Seconds since a worker last polled the task queue for workflow tasks; None when
    none ever did (or the server keeps no record of it); 0 when the server cannot say."""
    try:
        found = await describe_queue(client, queue)
    except RPCError:
        return 0.0  # cannot tell: let the call itself find out
    now = datetime.now(UTC)
    ages = [
        (now - p.last_access_time.ToDatetime().replace(tzinfo=UTC)).total_seconds()
        for p in found.pollers
    ]
    return max(0.0, min(ages)) if ages else None


async def workers_polling(client: Client, queue: str) -> bool:
    """Whether a worker has polled the task queue for workflow tasks lately. A worker
    long-polls for a minute at a time, so one that stopped a moment ago still counts:
    `worker_answers` tells those apart."""
    age = await last_poll(client, queue)
    return age is not None and age < POLLER_SEEN_SECONDS


async def worker_answers(
    client: Client, handle: WorkflowHandle[Any, Any], queue: str
) -> str | None:
    """None when a worker serves the run now; else why not, in words.

    The pollers of the task queue answer at once when no worker is there at all. One
    that stopped a moment ago is still listed, so the run is asked a built-in query
    (answered by the SDK, never recorded): unlike an Update, a query that nobody
    answers leaves nothing behind to be applied later.
    """
    age = await last_poll(client, queue)
    if age is None or age >= POLLER_SEEN_SECONDS:
        return no_worker(queue)
    try:
        await handle.query(METADATA_QUERY, rpc_timeout=timedelta(seconds=PROBE_SECONDS))
    except WorkflowQueryFailedError:
        return None  # a worker answered, if only to refuse
    except RPCError:
        return (
            f"no worker answered run {handle.id} within {PROBE_SECONDS:.0f}s (the last one "
            f"polled task queue {queue} {age:.0f}s ago); start one with `qlrf-run worker` "
            "(the run waits meanwhile, and nothing was sent)"
        )
    return None
