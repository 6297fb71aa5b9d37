"""The runbook library on the web (docs/governance.md): the list, the Start form typed
from a runbook's inputs, and `POST /api/v1/runs` for a library runbook or a proposal
sent as text. The service vouches for the person it signed in, as for a decision, and
checks the worker's policy first for a fast refusal naming the rule; the run itself
stays the authority (runner/engine/governance.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from runner.app import library
from runner.app.provenance import provenance
from runner.app.start import prepare_store
from runner.client import runs
from runner.client.connect import task_queue
from runner.engine.governance import Governance
from runner.errors import QlrfError
from runner.notify.messages import run_page
from runner.pipeline import Compiled
from runner.trust import policy
from runner.web.actions import signer_for
from runner.web.problems import problem
from runner.web.service import Service
from runner.web.vouch import Person
from runner.worker import current_policy

SIGNERS = "QLRF_ALLOWED_SIGNERS"


@dataclass
class Started:
    status: int  # 201 started, 403 refused by the policy or signed mode, 429 rate limit
    detail: str | None
    run_id: str | None = None


def policy_refusal(
    service: Service, compiled: Compiled, provenance: dict[str, Any], who: str
) -> str | None:
    """The worker's policy as this service reads it (QLRF_POLICY here too, read again
    only when the file changes): why `who` may not start this run; None if it may, or
    when the service has no policy."""
    groups = service.groups()
    data = current_policy()
    if data is None:
        return None
    gov = Governance.of(data, compiled.plan, provenance, who, groups)
    return gov.start_problem(who, provenance, redrive=False) or gov.proposal_problem(
        compiled.plan, {"inputs": compiled.inputs}
    )


def proposer(service: Service, who: str) -> bool:
    """`who` proposes runs under the policy this service reads (QLRF_POLICY): only a
    proposal, which waits for a person, may come as text rather than from the library."""
    groups = service.groups()
    data = current_policy()
    return data is not None and policy.proposal_of(policy.from_json(data), who, groups)


async def start_as(
    service: Service, person: Person, compiled: Compiled, provenance: dict[str, Any]
) -> Started:
    if not service.limiter.allow(person.principal):
        return Started(429, "too many requests in a minute from you; wait a moment")
    signer = signer_for(service, person)
    if signer is None and os.environ.get(SIGNERS, "").strip():
        return Started(
            403,
            "the workers are in signed mode: only a person signed in through the identity "
            "provider (or the CLI with their SSH key) can start a run",
        )
    refused = policy_refusal(service, compiled, provenance, person.principal)
    if refused is not None:
        return Started(403, refused)
    ctx = await service.ctx()
    record = await prepare_store(compiled)
    handle, _ = await runs.start(
        ctx.client,
        compiled.plan,
        compiled.inputs,
        person.principal,
        definition_sha256=compiled.source_sha256,
        definition_file=compiled.plan.source_file,
        definition_text=compiled.source_text,
        record=record,
        task_queue=task_queue(),
        provenance=provenance,
        signer=signer,
    )
    return Started(201, None, handle.id)


async def post_run(service: Service, request: Request, person: Person) -> Response:
    """`{"runbook": NAME, "inputs": {...}}`, or `{"text": RUNBOOK, "inputs": {...}}`."""
    from runner.web.api import json_body

    body = await json_body(request)
    if isinstance(body, Response):
        return body
    given = body.get("inputs") or {}
    if not isinstance(given, dict):
        return problem(422, "inputs is a JSON object of input names to values")
    name, text = body.get("runbook"), body.get("text")
    if (name is None) == (text is None) or not isinstance(name or text, str):
        return problem(422, 'give "runbook" (a name in the library) or "text" (a runbook)')
    if isinstance(text, str) and not proposer(service, person.principal):
        return problem(
            403,
            "a runbook's text is taken from a principal of the policy's proposals only "
            "(docs/governance.md); start a runbook of the library by its name",
        )
    try:
        if isinstance(name, str):
            compiled, provenance = library.compiled(library.entry(name), given)
        else:
            compiled, provenance = library.proposal(str(text), given)
    except library.NotInLibrary as exc:
        return problem(404, str(exc))
    except QlrfError as exc:
        return problem(422, str(exc))
    started = await start_as(service, person, compiled, provenance)
    if started.run_id is None:
        return problem(started.status, started.detail or "refused")
    return JSONResponse(
        {"run_id": started.run_id, "page": run_page(started.run_id), "provenance": provenance},
        201,
    )


async def library_page(service: Service, request: Request, person: Person) -> Response:
    from runner.web.pages import page

    return page(service, request, "library.html", person=person, entries=library.entries())


async def start_page(
    service: Service, request: Request, person: Person, name: str, refused: str | None = None
) -> Response:
    from runner.web.pages import page

    found = library.entry(name)
    return page(
        service,
        request,
        "start.html",
        403 if refused else 200,
        person=person,
        entry=found,
        provenance=provenance(found.path, found.path.read_bytes()),
        refused=refused,
    )


async def start_form(service: Service, request: Request, person: Person, name: str) -> Response:
    from runner.web.pages import csrf_refused

    form = await request.form()
    if not service.csrf_ok(request, form.get("csrf")):
        return csrf_refused(service, request, person)
    found = library.entry(name)
    pairs = [
        f"{key.removeprefix('input.')}={value}"
        for key, value in form.multi_items()
        if key.startswith("input.") and isinstance(value, str) and value != ""
    ]
    try:
        compiled, provenance = library.compiled(found, pairs=pairs)
    except QlrfError as exc:
        return await start_page(service, request, person, name, str(exc))
    started = await start_as(service, person, compiled, provenance)
    if started.run_id is None:
        return await start_page(service, request, person, name, started.detail)
    return RedirectResponse(f"/runs/{quote(started.run_id, safe='')}", 303)
