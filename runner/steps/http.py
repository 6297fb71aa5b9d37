"""The `http` activity: call an endpoint and check the status."""

from __future__ import annotations

import httpx
from temporalio import activity

from runner import durations
from runner.contract import HTTP_ACTIVITY, StepRequest, StepResult
from runner.contract.messages import JsonObject
from runner.steps.common import fail, resolved, result, tail
from runner.steps.secrets import Resolver

DEFAULT_TIMEOUT_SECONDS = 30.0


@activity.defn(name=HTTP_ACTIVITY)
async def http(request: StepRequest) -> StepResult:
    secrets = Resolver()
    params, _ = await resolved(secrets, request)
    method = params.get("method", "GET")
    timeout = DEFAULT_TIMEOUT_SECONDS
    if params.get("timeout"):
        timeout = durations.parse_ms(params["timeout"]) / 1000
    kwargs: JsonObject = {"headers": params.get("headers") or {}}
    if "json" in params:
        kwargs["json"] = params["json"]
    elif "body" in params:
        kwargs["content"] = str(params["body"]).encode()
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            response = await client.request(method, params["url"], **kwargs)
    except httpx.TransportError as exc:
        fail(
            secrets,
            "HTTPConnectionError",
            f"{method} {params['url']}: {type(exc).__name__}: {exc or 'no answer'}",
        )
    status = response.status_code
    text = tail(response.content, secrets)
    expected = params.get("expect_status")
    ok = status in expected if expected else 200 <= status < 300
    if not ok:
        brief = f"{method} {params['url']} answered {status}: {text[:500]}"
        if expected and 200 <= status < 300:
            fail(secrets, "HTTPUnexpectedStatus", brief, status=status)
        if 400 <= status < 500:
            fail(secrets, "HTTPClientError", brief, status=status)
        if status >= 500:
            fail(secrets, "HTTPServerError", brief, status=status)
        fail(secrets, "HTTPUnexpectedStatus", brief, status=status)
    try:
        body = response.json()
    except ValueError:
        body = None
    return result(
        secrets, {"status": status, "headers": dict(response.headers), "json": body, "text": text}
    )
