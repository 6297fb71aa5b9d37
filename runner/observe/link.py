"""A step that finished while its server was away is reported once the server is back.

The SDK gives up on reporting an activity's result after a few seconds of a server
that does not answer, and Temporal then runs the step again once its heartbeat
timeout passes: a restart of the server (the embedded one above all) would repeat
a step that had finished. So each worker watches whether its server answers (a
health check a second), and an activity that ends while it does not holds its
result until the server is back, within HOLD_SECONDS, before the SDK reports it.
A server that stays away longer than a step's heartbeat timeout retries the step
in any case; nothing on the worker can prevent that.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

CHECK_SECONDS = 1.0
HOLD_SECONDS = 120.0


class ServerLink:
    """Whether the client's server answered its last health check."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._up: asyncio.Event | None = None
        self._watch: asyncio.Task[None] | None = None

    def watch(self) -> asyncio.Event:
        """Start watching (once per event loop); the event set while the server answers."""
        loop = asyncio.get_running_loop()
        if self._up is None or self._watch is None or self._watch.get_loop() is not loop:
            self._up = asyncio.Event()
            self._up.set()
            self._watch = loop.create_task(self._watching(self._up))
        return self._up

    async def _watching(self, up: asyncio.Event) -> None:
        while True:
            try:
                answered = await self._client.service_client.check_health(
                    timeout=timedelta(seconds=2)
                )
            except Exception:
                answered = False
            if answered:
                up.set()
            else:
                up.clear()
            await asyncio.sleep(CHECK_SECONDS)

    async def until_up(self) -> None:
        """Return once the server answers (at once when it did last time)."""
        up = self.watch()
        if not up.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(up.wait(), HOLD_SECONDS)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()


class HoldResults(Interceptor):
    """Worker interceptor: activity results wait for the server (see the module)."""

    def __init__(self, link: ServerLink) -> None:
        self.link = link

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Held(next, self.link)


class _Held(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, link: ServerLink) -> None:
        super().__init__(next)
        self._link = link

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self._link.watch()  # from the step's start: by its end, an outage has been seen
        try:
            return await super().execute_activity(input)
        finally:
            # A local activity's result goes to its workflow in this process.
            if not activity.info().is_local:
                await self._link.until_up()
