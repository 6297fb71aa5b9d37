"""What every request works with: settings, the Temporal context, the service's key,
the identity provider, and who is asking."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict, deque
from typing import Any

import httpx
from starlette.requests import Request

from runner import config
from runner.app.context import Context, connected
from runner.errors import QlrfError
from runner.notify import config as notify_config
from runner.steps.secrets import unavailable
from runner.web.settings import Settings
from runner.web.tokens import Provider, Unauthorized
from runner.web.vouch import Person, Voucher

GROUPS_SECONDS = 30.0  # the groups file is read again after this long


class Unavailable(QlrfError):
    """Temporal cannot be reached now (503): the pages and the API say so, and why."""


class Limiter:
    """At most `per_minute` decisions per person per minute, in this process (each
    replica counts its own: a bound on abuse, not an accounting)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: defaultdict[str, deque[float]] = defaultdict(deque)

    def allow(self, who: str) -> bool:
        now = time.monotonic()
        seen = self._seen[who]
        while seen and now - seen[0] > 60.0:
            seen.popleft()
        if len(seen) >= self.per_minute:
            return False
        seen.append(now)
        return True


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.voucher = Voucher(settings.vouch_key) if settings.vouch_key else None
        self.http = httpx.AsyncClient()
        self.provider = Provider(settings, self.http) if settings.issuer else None
        self.limiter = Limiter(settings.decisions_per_minute)
        # The Slack channels' signing secrets and user maps (runner/web/slack.py); a
        # configuration that cannot be used stops `serve` at start, naming the key.
        self.notify = notify_config.load(missing_secret=unavailable)
        self._ctx: Context | None = None
        self._connecting = asyncio.Lock()
        self._groups: tuple[float, dict[str, list[str]]] | None = None

    async def ctx(self) -> Context:
        """The Temporal connection, made on first use (QlrfError while it cannot be)."""
        if self._ctx is not None:
            return self._ctx
        async with self._connecting:
            if self._ctx is None:
                try:
                    self._ctx = await connected(ui=False)
                except QlrfError as exc:
                    raise Unavailable(str(exc)) from None
        return self._ctx

    def groups(self) -> dict[str, list[str]]:
        """The approver groups, from the same file the workers read (QLRF_GROUPS_FILE)."""
        now = time.monotonic()
        if self._groups is None or now - self._groups[0] > GROUPS_SECONDS:
            try:
                known, _ = config.groups()
            except QlrfError:
                known = {}
            self._groups = (now, {k: list(v) for k, v in known.items()})
        return self._groups[1]

    async def person(self, request: Request) -> Person | None:
        """Who asks: a bearer token's person, or the session's; None when nobody signed
        in. Unauthorized for a token that proves no one."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("give Authorization: Bearer TOKEN")
            if self.provider is None:
                raise Unauthorized("this service has no identity provider to check tokens with")
            return await self.provider.bearer(token.strip())
        return session_person(request)

    def csrf(self, request: Request) -> str:
        """The session's CSRF token, made with the session."""
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
            request.session["csrf"] = token
        return token

    def csrf_ok(self, request: Request, given: Any) -> bool:
        token = request.session.get("csrf")
        return (
            isinstance(token, str)
            and isinstance(given, str)
            and secrets.compare_digest(token, given)
        )


def session_person(request: Request) -> Person | None:
    found = request.session.get("person")
    if not isinstance(found, dict) or not isinstance(found.get("principal"), str):
        return None
    return Person(
        found["principal"],
        verified=bool(found.get("verified")),
        issuer=found.get("issuer"),
        subject=found.get("subject"),
        auth_time=found.get("auth_time"),
    )


def sign_in(request: Request, person: Person) -> None:
    """A fresh session for `person` (a new CSRF token too: none from before sign-in)."""
    request.session.clear()
    request.session["person"] = {
        "principal": person.principal,
        "verified": person.verified,
        "issuer": person.issuer,
        "subject": person.subject,
        "auth_time": person.auth_time,
    }
    request.session["csrf"] = secrets.token_urlsafe(24)


def safe_next(target: Any) -> str:
    """Where to go after sign-in: a path of this service, never another site."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 33 for ch in target):
        return "/"
    return target
