"""The `notify` activity: a message to the worker's log or to a webhook."""

from __future__ import annotations

import logging

import httpx
from temporalio import activity

from runner.contract import NOTIFY_ACTIVITY, StepRequest, StepResult
from runner.steps.common import fail, resolved, result
from runner.steps.secrets import Resolver

logger = logging.getLogger("qlrf.notify")


@activity.defn(name=NOTIFY_ACTIVITY)
async def notify(request: StepRequest) -> StepResult:
    secrets = Resolver()
    params, _ = await resolved(secrets, request)
    message = str(params["message"])
    if params.get("channel", "log") == "log":
        logger.info("%s/%s: %s", request.run_id, request.step, secrets.mask(message))
        return result(secrets, {"delivered": True})
    url = params.get("url")
    if not url:
        fail(secrets, "NotifyFailed", "channel webhook needs a url")
    payload = {"text": message, "run_id": request.run_id, "step": request.step}
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(url, json=payload)
    except httpx.TransportError as exc:
        fail(secrets, "NotifyFailed", f"webhook {url}: {type(exc).__name__}: {exc}")
    if 400 <= response.status_code < 500:
        fail(secrets, "HTTPClientError", f"webhook {url} answered {response.status_code}")
    if response.status_code >= 300:
        fail(secrets, "NotifyFailed", f"webhook {url} answered {response.status_code}")
    return result(secrets, {"delivered": True})
