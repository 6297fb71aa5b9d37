"""Tell people that a gate waits: always the worker's log, and the configured webhook."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.config import notify_webhook
from runner.engine.model import GATE_NOTIFY_ACTIVITY

logger = logging.getLogger("qlrf.gates")


@activity.defn(name=GATE_NOTIFY_ACTIVITY)
async def gate_notify(request: dict[str, Any]) -> dict[str, Any]:
    who = ", ".join(request["approvers"]) or "anyone"
    text = (
        f"gate {request['gate']} of run {request['run']} waits for approval by {who} "
        f"until {request['deadline']}: {request['message']} -- {request['command']}"
    )
    logger.warning(text)
    url = notify_webhook()
    if not url:
        return {"delivered": ["log"]}
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(url, json={**request, "text": text})
    except httpx.TransportError as exc:
        raise ApplicationError(f"webhook {url}: {exc}", type="NotifyFailed") from None
    if response.status_code >= 300:
        raise ApplicationError(
            f"webhook {url} answered {response.status_code}", type="NotifyFailed"
        )
    return {"delivered": ["log", "webhook"]}
