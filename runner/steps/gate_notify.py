"""Tell people that a gate waits: always the worker's log, and the configured webhook.

The webhook comes from the operator's configuration, which the worker's
composition root reads (runner.config); this activity is given the lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.contract import GATE_NOTIFY_ACTIVITY

logger = logging.getLogger("qlrf.gates")


def gate_notifier(webhook: Callable[[], str | None]) -> Callable[..., Any]:
    """The gate_notify activity, POSTing to the webhook that `webhook()` names, if any."""

    @activity.defn(name=GATE_NOTIFY_ACTIVITY)
    async def gate_notify(request: dict[str, Any]) -> dict[str, Any]:
        return await _notify(request, webhook())

    return gate_notify


async def _notify(request: dict[str, Any], url: str | None) -> dict[str, Any]:
    who = ", ".join(request["approvers"]) or "anyone"
    text = (
        f"gate {request['gate']} of run {request['run']} waits for approval by {who} "
        f"until {request['deadline']}: {request['message']} -- {request['command']}"
    )
    logger.warning(text)
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
