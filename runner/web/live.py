"""The run page, live: Server-Sent Events carrying the run's part of the page again
whenever it changes (htmx's SSE extension swaps it in). The run is looked at every
half second, so a change shows within 1.5 s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from runner.app.view import look
from runner.web.pages import live_fragment
from runner.web.service import Service

POLL_SECONDS = 0.5
PING_SECONDS = 15


def events(service: Service, request: Request, run: str) -> EventSourceResponse:
    async def stream() -> AsyncIterator[dict[str, Any]]:
        ctx = await service.ctx()
        last = None
        while True:
            if await request.is_disconnected():
                return
            try:
                snap = await look(ctx, run, attempts=True)
            except Exception:  # a look that failed: the next one tries again
                await asyncio.sleep(POLL_SECONDS)
                continue
            html = live_fragment(request, snap.view)
            if html != last:
                last = html
                yield {"event": "state", "data": html}
            if snap.closed:
                yield {"event": "closed", "data": snap.view.status}
                return
            await asyncio.sleep(POLL_SECONDS)

    return EventSourceResponse(stream(), ping=PING_SECONDS)
