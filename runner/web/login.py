"""Signing in: the authorization code flow with PKCE, `state` and `nonce` (Authlib),
or, with no issuer and the service on 127.0.0.1, a name that is marked unverified.

The session is the signed cookie `__Host-qlrf` (Secure, HttpOnly, SameSite=Lax,
Path=/) with an expiry: no session store, so any replica with the same
QLRF_WEB_SESSION_KEY serves the person.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from authlib.deprecate import AuthlibDeprecationWarning
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runner.trust import claims
from runner.web.pages import page
from runner.web.service import Service, safe_next, session_person, sign_in
from runner.web.tokens import ProviderDown
from runner.web.vouch import Person

with warnings.catch_warnings():
    # Authlib warns at import about its own httpx module's future, nothing for operators.
    # Its deprecate module turns its warnings on for good when first imported, so it is
    # imported above, before they are turned off here.
    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

CLIENT = "idp"
NAME_LIMIT = 120


def oauth_for(service: Service) -> OAuth | None:
    settings = service.settings
    if settings.issuer is None or service.provider is None:
        return None
    oauth = OAuth()
    kwargs: dict[str, Any] = {"scope": "openid email profile", "code_challenge_method": "S256"}
    if not settings.client_secret:
        kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
    oauth.register(
        CLIENT,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=service.provider.discovery_url,
        client_kwargs=kwargs,
    )
    return oauth


async def login(service: Service, request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None:
        return page(service, request, "login.html", person=session_person(request), next=target)
    request.session["next"] = target
    try:
        client = oauth.create_client(CLIENT)
        return await client.authorize_redirect(  # type: ignore[no-any-return]
            request, f"{service.settings.public_url}/auth/callback"
        )
    except Exception as exc:  # the provider's failure, shown as a page
        return provider_down(service, request, exc)


def provider_down(service: Service, request: Request, exc: BaseException) -> Response:
    detail = str(exc) if isinstance(exc, ProviderDown) else type(exc).__name__
    return page(
        service,
        request,
        "error.html",
        503,
        person=None,
        message=(
            f"the identity provider at {service.settings.issuer} does not answer ({detail}); "
            "runs go on, and `qlrf-run approve` still decides meanwhile"
        ),
    )


async def local_login(service: Service, request: Request) -> Response:
    if request.app.state.oauth is not None:
        return Response(status_code=405)
    form = await request.form()
    name = str(form.get("name") or "").strip()
    target = safe_next(form.get("next"))
    if not name or len(name) > NAME_LIMIT or not claims.printable(name):
        return page(
            service,
            request,
            "login.html",
            400,
            person=None,
            next=target,
            problem=f"give your name (1 to {NAME_LIMIT} printable characters)",
        )
    sign_in(request, Person(name, verified=False))
    return RedirectResponse(target, 303)


async def callback(service: Service, request: Request) -> Response:
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None or service.provider is None:
        return Response(status_code=404)
    client = oauth.create_client(CLIENT)
    target = safe_next(request.session.get("next"))
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        return page(
            service,
            request,
            "error.html",
            401,
            person=None,
            message=f"sign-in failed: {exc.description or exc.error}; try again",
        )
    except Exception as exc:  # the provider's failure, shown as a page
        return provider_down(service, request, exc)
    claims = token.get("userinfo") or {}
    try:
        principal = service.provider.principal_of(dict(claims))
    except Exception as exc:  # Unauthorized: shown in words
        return page(service, request, "error.html", 401, person=None, message=str(exc))
    auth_time = claims.get("auth_time") or claims.get("iat") or int(time.time())
    sign_in(
        request,
        Person(
            principal,
            verified=True,
            issuer=service.settings.issuer,
            subject=str(claims.get("sub") or ""),
            auth_time=int(auth_time),
        ),
    )
    return RedirectResponse(target, 303)


async def logout(service: Service, request: Request) -> Response:
    form = await request.form()
    if not service.csrf_ok(request, form.get("csrf")):
        return Response("no valid CSRF token", 403)
    request.session.clear()
    return RedirectResponse("/login", 303)
