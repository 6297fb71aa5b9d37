"""Whether this worker polls Temporal, as the server sees it: /readyz's answer.

The server lists the pollers of a task queue with their identity and when they last
asked for work; this worker is ready when it is among them, recently.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.client import Client

from runner.observe.health import Health
from runner.observe.ticks import ticks
from runner.taskqueue import describe_queue

CHECK_SECONDS = 2.0
# A worker long-polls for up to a minute; seen within this, it is polling.
SEEN_SECONDS = 70.0


async def polls(client: Client, queue: str, identity: str) -> bool:
    found = await describe_queue(client, queue)
    now = datetime.now(UTC)
    for poller in found.pollers:
        if poller.identity != identity:
            continue
        seen = poller.last_access_time.ToDatetime().replace(tzinfo=UTC)
        if (now - seen).total_seconds() < SEEN_SECONDS:
            return True
    return False


async def watch_readiness(
    client: Client, queue: str, identity: str, health: Health, stop: asyncio.Event
) -> None:
    async for _ in ticks(stop, CHECK_SECONDS):
        try:
            if await polls(client, queue, identity):
                health.ready()
            else:
                health.unready(f"not polling task queue {queue} yet")
        except Exception as exc:  # the server is away: not ready, say why
            health.unready(f"cannot reach Temporal: {str(exc)[:200]}")
