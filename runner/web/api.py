"""The JSON API under /api/v1 (OpenAPI at /api/openapi.json), errors as RFC 9457
problem+json. The run view is `status --format json`'s, the pending list `pending
--format json`'s: one shape for every client."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runner.app.evidence import bundle
from runner.app.pending import pending
from runner.app.runs import runs
from runner.app.view import view
from runner.contract.messages import ControlRequest
from runner.contract.vocab import ControlAction, DecisionKind
from runner.web import actions
from runner.web.metrics import DECISIONS
from runner.web.problems import problem
from runner.web.service import Service
from runner.web.vouch import Person

BODY_LIMIT = 256 * 1024


async def json_body(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    if len(raw) > BODY_LIMIT:
        return problem(422, f"the body is over {BODY_LIMIT} bytes")
    try:
        found = json.loads(raw or b"{}")
    except ValueError:
        return problem(422, "the body is not JSON")
    if not isinstance(found, dict):
        return problem(422, "the body is a JSON object")
    return found


async def list_runs(service: Service, request: Request) -> Response:
    q = request.query_params
    try:
        limit = max(1, min(int(q.get("limit") or 50), 1000))
    except ValueError:
        return problem(422, "limit is a number")
    ctx = await service.ctx()
    rows = await runs(ctx, q.get("kind") or None, q.get("status") or None, limit, q.get("name"))
    return JSONResponse({"runs": rows})


async def get_run(service: Service, run: str) -> Response:
    ctx = await service.ctx()
    return JSONResponse((await view(ctx, run)).to_json())


async def get_pending(service: Service) -> Response:
    ctx = await service.ctx()
    return JSONResponse([row.to_json() for row in await pending(ctx)])


async def get_evidence(run: str) -> Response:
    return JSONResponse(await bundle(run))


async def post_decision(
    service: Service, request: Request, person: Person, run: str, gate: str
) -> Response:
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    kind_text = body.get("decision")
    try:
        kind = DecisionKind(str(kind_text))
    except ValueError:
        return problem(422, f"decision must be approve, reject or modify, not {kind_text!r}")
    comment = body.get("comment") or ""
    if not isinstance(comment, str):
        return problem(422, "comment is a text")
    changes = body.get("set")
    if kind == DecisionKind.MODIFY and (not isinstance(changes, dict) or not changes):
        return problem(422, 'a modify sets at least one input: {"set": {"name": value}}')
    try:
        outcome, _ = await actions.decide_as(
            service,
            person,
            run,
            gate,
            kind,
            comment,
            changes=changes if kind == DecisionKind.MODIFY else None,
        )
    except actions.RateLimited:
        DECISIONS.labels("rate_limited").inc()
        return problem(429, "too many decisions in a minute from you; wait a moment")
    DECISIONS.labels({200: "accepted", 404: "no_gate"}.get(outcome.status, "refused")).inc()
    if outcome.status != 200:
        return problem(outcome.status, outcome.detail or "refused", run=run, gate=gate)
    return JSONResponse(outcome.body)


async def post_control(service: Service, request: Request, person: Person, run: str) -> Response:
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    # The API's names are the CLI's verbs: `set` is the concurrency control.
    raw = {**body, "action": "concurrency" if body.get("action") == "set" else body.get("action")}
    parsed = ControlRequest.parse(raw)
    if isinstance(parsed, str):
        return problem(422, parsed.replace("concurrency", "set"))
    if parsed.malformed:
        return problem(422, f"{parsed.malformed} is a list of item names")
    concurrency = parsed.concurrency
    if parsed.action == ControlAction.CONCURRENCY and not isinstance(concurrency, int):
        return problem(422, 'set takes {"step": STEP, "concurrency": N}')
    try:
        outcome = await actions.control_as(
            service,
            person,
            run,
            parsed.action,
            comment=parsed.comment,
            step=parsed.step,
            concurrency=concurrency if isinstance(concurrency, int) else None,
            items=parsed.items,
        )
    except actions.RateLimited:
        return problem(429, "too many requests in a minute from you; wait a moment")
    if outcome.status != 200:
        return problem(outcome.status, outcome.detail or "refused", run=run)
    return JSONResponse(outcome.body)
