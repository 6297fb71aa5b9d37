"""A task queue as the server sees it: its pollers and versioning.

Below both the client and observability (readiness, Worker Versioning), which
each ask it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeTaskQueueResponse
from temporalio.client import Client


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
