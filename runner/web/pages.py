"""The pages: Waiting for you, runs, a run live, the review page, locks, schedules,
a step's log and the evidence downloads. Every label is the contract (docs/web.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from runner.app.evidence import bundle
from runner.app.locks import locks
from runner.app.pending import PendingGate, PendingLock, pending
from runner.app.review import Review, preview, review
from runner.app.runs import runs
from runner.app.view import look
from runner.client import schedules
from runner.client.logs import printed
from runner.contract.gate_rules import policy_refusal, who_refusal
from runner.contract.state import GateView, RunView
from runner.contract.vocab import DecisionKind
from runner.errors import QlrfError
from runner.store.evidence import markdown, provenance_line
from runner.web import actions
from runner.web.graph import layout
from runner.web.service import Service
from runner.web.vouch import Person


def page(
    service: Service, request: Request, template: str, code: int = 200, **values: Any
) -> HTMLResponse:
    env = request.app.state.templates
    person = values.pop("person", None)
    html = env.get_template(template).render(
        person=person,
        csrf=service.csrf(request) if person is not None else "",
        local=service.settings.local,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, code)


def csrf_refused(service: Service, request: Request, person: Person) -> HTMLResponse:
    """A form posted without this session's CSRF token: nothing is done."""
    return page(
        service,
        request,
        "error.html",
        403,
        person=person,
        message="the form has no valid CSRF token; open the page again and retry",
    )


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)


def quorum(gate: GateView) -> str:
    return f"{len(gate.approvals)} of {gate.min_approvals}"


def mine(gate: GateView, person: Person, groups: dict[str, list[str]]) -> bool:
    """A gate this person may decide, and has not approved yet (the run's own rule; who
    started each run is not in the pending list, so self-approval is left to the
    review page)."""
    refused = who_refusal(
        gate, person.principal, DecisionKind.APPROVE, started_by=None, groups=groups
    )
    return refused is None


async def inbox(service: Service, request: Request, person: Person) -> Response:
    ctx = await service.ctx()
    rows = await pending(ctx)
    groups = service.groups()
    gates = [r for r in rows if isinstance(r, PendingGate)]
    yours = [g for g in gates if mine(g.gate, person, groups)]
    others = [g for g in gates if not mine(g.gate, person, groups)]
    waits = [r for r in rows if isinstance(r, PendingLock)]
    return page(
        service,
        request,
        "inbox.html",
        person=person,
        yours=yours,
        others=others,
        waits=waits,
        quorum=quorum,
    )


async def runs_page(service: Service, request: Request, person: Person) -> Response:
    ctx = await service.ctx()
    q = request.query_params
    kind = q.get("kind") or None
    status = q.get("status") or None
    name = q.get("name") or None
    try:
        rows = await runs(ctx, kind, status, 100, name)
    except QlrfError as exc:
        return page(service, request, "error.html", 400, person=person, message=str(exc))
    return page(
        service,
        request,
        "runs.html",
        person=person,
        rows=rows,
        kind=kind,
        state_filter=status,
        name_filter=name,
    )


def gate_actions(
    view: RunView, gate: GateView, person: Person, service: Service
) -> dict[str, str | None]:
    """For each button, None when the run would take it from this person, else the
    run's own reason; the page shows a button only when it is None."""
    signed = view.identity is not None and view.identity.signed
    if signed and not (person.verified and service.voucher is not None):
        why = (
            "this run is in signed mode: only a person signed in through the identity "
            "provider, or the CLI with their SSH key, can decide it"
        )
        return {"approve": why, "reject": why, "modify": why}
    groups = service.groups()
    found: dict[str, str | None] = {}
    for kind in ("approve", "reject", "modify"):
        found[kind] = who_refusal(
            gate, person.principal, kind, started_by=view.started_by, groups=groups
        )
        policy = view.policy or {}
        if found[kind] is None and gate.gate not in (policy.get("gates") or []):
            found[kind] = policy_refusal(
                policy, person.principal, groups, "approve", f"decide gate '{gate.gate}'"
            )
    if not gate.modifiable and found["modify"] is None:
        found["modify"] = "this gate lets no input be modified"
    return found


def _assignments(form: Any) -> list[str]:
    """The form's `set.NAME` fields that hold a value, as NAME=VALUE. Which inputs a
    gate lets be modified is the run's to check (and the preview's, with its words)."""
    found = []
    for key, value in form.multi_items():
        name = key.removeprefix("set.")
        if key.startswith("set.") and name and isinstance(value, str) and value != "":
            found.append(f"{name}={value}")
    return found


async def review_page(
    service: Service,
    request: Request,
    person: Person,
    run: str,
    gate: str,
    *,
    refused: str | None = None,
    status: int = 200,
) -> Response:
    ctx = await service.ctx()
    shown: Review = await review(ctx, run, gate)
    previewed = None
    problem = None
    asked = _assignments(request.query_params)
    if request.query_params.get("preview") and asked:
        try:
            changes, after = preview(shown, asked)
            previewed = {
                "changes": changes,
                "after": after,
                "asked": dict(a.split("=", 1) for a in asked),
            }
        except QlrfError as exc:
            problem = str(exc)
    return page(
        service,
        request,
        "review.html",
        status,
        person=person,
        r=shown,
        view=shown.view,
        gate=shown.gate,
        can=gate_actions(shown.view, shown.gate, person, service),
        quorum=quorum(shown.gate),
        refused=refused,
        previewed=previewed,
        preview_problem=problem,
    )


async def decide_form(
    service: Service, request: Request, person: Person, run: str, gate: str
) -> Response:
    form = await request.form()
    if not service.csrf_ok(request, form.get("csrf")):
        return csrf_refused(service, request, person)
    kind_text = str(form.get("decision") or "")
    comment = str(form.get("comment") or "")[:2000]
    try:
        kind = DecisionKind(kind_text)
    except ValueError:
        return page(
            service,
            request,
            "error.html",
            400,
            person=person,
            message=f"decision must be approve, reject or modify, not {kind_text!r}",
        )
    assignments: list[str] = []
    if kind == DecisionKind.MODIFY:
        assignments = _assignments(form)
        if not assignments:
            return await review_page(
                service,
                request,
                person,
                run,
                gate,
                refused="a modify sets at least one input",
                status=409,
            )
    try:
        outcome, _ = await actions.decide_as(
            service, person, run, gate, kind, comment, assignments=assignments
        )
    except actions.RateLimited:
        return await review_page(
            service,
            request,
            person,
            run,
            gate,
            refused="too many decisions in a minute; wait a moment",
            status=429,
        )
    except QlrfError as exc:  # a value that does not read as its type
        return await review_page(service, request, person, run, gate, refused=str(exc), status=409)
    if outcome.status != 200:
        return await review_page(
            service, request, person, run, gate, refused=outcome.detail, status=outcome.status
        )
    if kind == DecisionKind.MODIFY:
        return RedirectResponse(f"/runs/{quote(run, safe='')}/gates/{quote(gate, safe='')}", 303)
    return RedirectResponse(f"/runs/{quote(run, safe='')}", 303)


async def run_page(service: Service, request: Request, person: Person, run: str) -> Response:
    ctx = await service.ctx()
    snap = await look(ctx, run, attempts=True)
    graph = None
    try:
        from runner.app.review import plan_of

        graph = layout(await plan_of(ctx, run), snap.view)
    except QlrfError:
        graph = None
    return page(
        service,
        request,
        "run.html",
        person=person,
        view=snap.view,
        graph=graph,
        provenance_line=provenance_line,
        quorum=quorum,
        live=live_fragment(request, snap.view),
    )


def live_fragment(request: Request, view: RunView) -> str:
    env = request.app.state.templates
    return str(env.get_template("run_live.html").render(view=view, quorum=quorum))


async def logs_page(
    service: Service, request: Request, person: Person, run: str, step: str
) -> Response:
    ctx = await service.ctx()
    from runner.app.reach import described

    handle, _ = await described(ctx, run)
    snap = await look(ctx, run, attempts=True)
    item = request.query_params.get("item") or None
    try:
        found = await printed(ctx.client, handle, snap, step, item)
    except QlrfError as exc:
        return page(service, request, "error.html", 404, person=person, message=str(exc))
    output = found.output if isinstance(found.output, dict) else {}
    beat = found.beat or {}
    stdout = output.get("stdout") if not found.running else "\n".join(beat.get("stdout_tail") or [])
    stderr = output.get("stderr") if not found.running else "\n".join(beat.get("stderr_tail") or [])
    return page(
        service,
        request,
        "logs.html",
        person=person,
        run=run,
        step=step,
        item=item,
        found=found,
        stdout=stdout,
        stderr=stderr,
    )


async def evidence_download(service: Service, run: str, form: str) -> Response:
    found = await bundle(run)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run)
    if form == "md":
        return Response(
            markdown(found),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{safe}.evidence.md"'},
        )
    return Response(
        json.dumps(found, indent=2, sort_keys=True),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{safe}.evidence.json"'},
    )


async def locks_page(service: Service, request: Request, person: Person) -> Response:
    ctx = await service.ctx()
    rows = [row.to_json() for row in await locks(ctx)]
    return page(service, request, "locks.html", person=person, rows=rows)


async def schedules_page(service: Service, request: Request, person: Person) -> Response:
    ctx = await service.ctx()
    rows = await schedules.listing(ctx.client)
    return page(service, request, "schedules.html", person=person, rows=rows)
