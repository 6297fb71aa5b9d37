"""The service as one ASGI application: routes, sign-in, the session cookie, the
security headers, CSRF, the error pages and problem+json, and the measurements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.app.context import ServerError
from runner.app.reach import NoRun
from runner.app.review import NoGate
from runner.errors import QlrfError
from runner.web import api, library, live, login, pages, slack
from runner.web.metrics import Measure, metrics_response
from runner.web.openapi import document
from runner.web.problems import problem
from runner.web.render import environment
from runner.web.service import Service, Unavailable
from runner.web.settings import Settings
from runner.web.tokens import ProviderDown, Unauthorized
from runner.web.vouch import Person

COOKIE = "__Host-qlrf"
CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """The CSP and its companions on every answer, pages and API alike."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


Handler = Callable[[Request, Person], Awaitable[Response]]


def build(settings: Settings) -> Starlette:
    service = Service(settings)
    oauth = login.oauth_for(service)

    def _failure(
        exc: Exception, *, api_call: bool, request: Request, person: Person | None
    ) -> Response:
        if isinstance(exc, NoRun | NoGate):
            status, text = 404, str(exc)
        elif isinstance(exc, ServerError):
            status, text = 503, f"Temporal did not answer: {exc.message}"
        elif isinstance(exc, ProviderDown | Unavailable):
            status, text = 503, str(exc)
        else:
            status, text = 400, str(exc)
        if api_call:
            return problem(status, text)
        return pages.page(service, request, "error.html", status, person=person, message=text)

    def api_route(
        handler: Handler, *, unsafe: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                person = await service.person(request)
            except Unauthorized as exc:
                return problem(401, str(exc))
            except ProviderDown as exc:
                return problem(503, str(exc))
            if person is None:
                return problem(401, "sign in at /login, or send Authorization: Bearer TOKEN")
            if (
                unsafe
                and person.how == "session"
                and not service.csrf_ok(request, request.headers.get("x-csrf-token"))
            ):
                return problem(
                    403, "a request with the session cookie needs its CSRF token (X-CSRF-Token)"
                )
            try:
                return await handler(request, person)
            except (QlrfError, ServerError) as exc:
                return _failure(exc, api_call=True, request=request, person=person)

        return endpoint

    def page_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                person = await service.person(request)
            except (Unauthorized, ProviderDown) as exc:
                return pages.page(
                    service, request, "error.html", 401, person=None, message=str(exc)
                )
            if person is None:
                return pages.to_login(request)
            try:
                return await handler(request, person)
            except (QlrfError, ServerError) as exc:
                return _failure(exc, api_call=False, request=request, person=person)

        return endpoint

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            ctx = await service.ctx()
            await ctx.client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception as exc:  # not ready, and why
            return PlainTextResponse(f"not ready: Temporal does not answer ({exc})", 503)
        return PlainTextResponse("ready")

    async def metrics(request: Request) -> Response:
        return metrics_response()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document(settings.public_url))

    def plain(
        handler: Callable[[Service, Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(service, request)

        return endpoint

    def path(request: Request, name: str) -> str:
        return str(request.path_params[name])

    routes = [
        Route("/", page_route(lambda r, who: pages.inbox(service, r, who))),
        Route("/runs", page_route(lambda r, who: pages.runs_page(service, r, who))),
        Route(
            "/runs/{run}",
            page_route(lambda r, who: pages.run_page(service, r, who, path(r, "run"))),
        ),
        Route(
            "/runs/{run}/events",
            page_route(lambda r, who: _events(service, r, path(r, "run"))),
        ),
        Route(
            "/runs/{run}/evidence.json",
            page_route(lambda r, who: pages.evidence_download(service, path(r, "run"), "json")),
        ),
        Route(
            "/runs/{run}/evidence.md",
            page_route(lambda r, who: pages.evidence_download(service, path(r, "run"), "md")),
        ),
        Route(
            "/runs/{run}/steps/{step}/logs",
            page_route(
                lambda r, who: pages.logs_page(service, r, who, path(r, "run"), path(r, "step"))
            ),
        ),
        Route(
            "/runs/{run}/gates/{gate:path}",
            page_route(
                lambda r, who: pages.review_page(service, r, who, path(r, "run"), path(r, "gate"))
            ),
            methods=["GET"],
        ),
        Route(
            "/runs/{run}/gates/{gate:path}",
            page_route(
                lambda r, who: pages.decide_form(service, r, who, path(r, "run"), path(r, "gate"))
            ),
            methods=["POST"],
        ),
        Route("/locks", page_route(lambda r, who: pages.locks_page(service, r, who))),
        Route("/library", page_route(lambda r, who: library.library_page(service, r, who))),
        Route(
            "/library/{name:path}",
            page_route(lambda r, who: library.start_page(service, r, who, path(r, "name"))),
            methods=["GET"],
        ),
        Route(
            "/library/{name:path}",
            page_route(lambda r, who: library.start_form(service, r, who, path(r, "name"))),
            methods=["POST"],
        ),
        Route("/schedules", page_route(lambda r, who: pages.schedules_page(service, r, who))),
        Route("/login", plain(login.login), methods=["GET"]),
        Route("/login", plain(login.local_login), methods=["POST"]),
        Route("/auth/callback", plain(login.callback)),
        Route("/logout", plain(login.logout), methods=["POST"]),
        Route(
            "/integrations/slack/actions",
            plain(slack.actions),
            methods=["POST"],
        ),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/openapi.json", openapi),
        Route("/api/v1/runs", api_route(lambda r, who: api.list_runs(service, r))),
        Route(
            "/api/v1/runs",
            api_route(lambda r, who: library.post_run(service, r, who), unsafe=True),
            methods=["POST"],
        ),
        Route("/api/v1/pending", api_route(lambda r, who: api.get_pending(service))),
        Route(
            "/api/v1/runs/{run}/evidence",
            api_route(lambda r, who: api.get_evidence(path(r, "run"))),
        ),
        Route(
            "/api/v1/runs/{run}/controls",
            api_route(
                lambda r, who: api.post_control(service, r, who, path(r, "run")), unsafe=True
            ),
            methods=["POST"],
        ),
        Route(
            "/api/v1/runs/{run}/gates/{gate:path}/decisions",
            api_route(
                lambda r, who: api.post_decision(service, r, who, path(r, "run"), path(r, "gate")),
                unsafe=True,
            ),
            methods=["POST"],
        ),
        Route(
            "/api/v1/runs/{run}",
            api_route(lambda r, who: api.get_run(service, path(r, "run"))),
        ),
        Mount(
            "/static",
            StaticFiles(directory=str(resources.files("runner.web") / "static")),
            name="static",
        ),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await service.http.aclose()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Measure),
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=settings.session_key,
                session_cookie=COOKIE,
                max_age=int(settings.session_hours * 3600),
                path="/",
                same_site="lax",
                https_only=True,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.templates = environment()
    app.state.oauth = oauth
    app.state.service = service
    return app


async def _events(service: Service, request: Request, run: str) -> Response:
    return live.events(service, request, run)
