"""The service's configuration, all from the environment (docs/web.md).

Every problem stops `serve` at its start with one line naming the variable, never
later in front of a person.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runner.errors import QlrfError

ISSUER = "QLRF_WEB_OIDC_ISSUER"
CLIENT_ID = "QLRF_WEB_OIDC_CLIENT_ID"
CLIENT_SECRET = "QLRF_WEB_OIDC_CLIENT_SECRET"
AUDIENCE = "QLRF_WEB_OIDC_AUDIENCE"  # bearer JWTs' audience, when not the client id
PRINCIPAL_CLAIM = "QLRF_WEB_PRINCIPAL_CLAIM"
SESSION_KEY = "QLRF_WEB_SESSION_KEY"
SESSION_HOURS = "QLRF_WEB_SESSION_HOURS"
VOUCH_KEY = "QLRF_WEB_VOUCH_KEY"
PUBLIC_URL = "QLRF_WEB_PUBLIC_URL"
DECISIONS_PER_MINUTE = "QLRF_WEB_DECISIONS_PER_MINUTE"
DEFAULT_PORT = 8089


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    public_url: str  # what links and the sign-in's redirect use, without a trailing /
    issuer: str | None  # None: local sign-in (a name, unverified), on 127.0.0.1 only
    client_id: str | None
    client_secret: str | None
    audience: str | None
    principal_claim: str
    session_key: str
    session_hours: float
    vouch_key: Path | None
    decisions_per_minute: int

    @property
    def local(self) -> bool:
        return self.issuer is None


def _secret(name: str) -> str | None:
    """NAME, or the text of the file NAME_FILE names (a mounted secret)."""
    given = os.environ.get(name, "").strip()
    if given:
        return given
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise QlrfError(f"{name}_FILE={path}: cannot read it ({exc.strerror})") from None
    if not text:
        raise QlrfError(f"{name}_FILE={path} is empty")
    return text


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise QlrfError(f"{name}={value!r} is not an http(s) URL (such as https://idp.example.com)")
    return value.rstrip("/")


def _number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise QlrfError(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise QlrfError(f"{name}={text!r} must be above 0")
    return value


def load(host: str, port: int, public_url: str | None) -> Settings:
    """The settings for `serve --host HOST --port PORT`; QlrfError naming the variable."""
    issuer_text = os.environ.get(ISSUER, "").strip()
    issuer = _url(ISSUER, issuer_text) if issuer_text else None
    if issuer is None and not loopback(host):
        raise QlrfError(
            f"serve --host {host}: with no {ISSUER} anybody could sign in under any name; "
            f"set {ISSUER} (and {CLIENT_ID}, {CLIENT_SECRET}), or bind to 127.0.0.1"
        )
    given_url = public_url or os.environ.get(PUBLIC_URL, "").strip()
    shown_host = f"[{host}]" if ":" in host else host
    url = _url("--public-url", given_url) if given_url else f"http://{shown_host}:{port}"
    if not loopback(urlsplit(url).hostname or "") and not url.startswith("https://"):
        raise QlrfError(
            f"--public-url {url}: the session cookie is Secure, so a public URL must be https "
            f"(or set {PUBLIC_URL} to the https address of the proxy in front)"
        )
    client_id = os.environ.get(CLIENT_ID, "").strip() or None
    client_secret = _secret(CLIENT_SECRET)
    vouch = os.environ.get(VOUCH_KEY, "").strip()
    session_key = _secret(SESSION_KEY)
    if issuer is not None:
        if not client_id:
            raise QlrfError(f"{ISSUER} is set but {CLIENT_ID} is not: name this service's client")
        if not vouch:
            raise QlrfError(
                f"{ISSUER} is set but {VOUCH_KEY} is not: the service signs every action of a "
                "signed-in person with its SSH key (ssh-keygen -t ed25519 -f qlrf-web)"
            )
        if not session_key:
            raise QlrfError(
                f"{ISSUER} is set but {SESSION_KEY} (or {SESSION_KEY}_FILE) is not: every "
                "replica signs sessions with the same key (openssl rand -hex 32)"
            )
    if session_key is not None and len(session_key) < 16:
        raise QlrfError(
            f"{SESSION_KEY} is too short: give at least 16 characters (32 random bytes)"
        )
    return Settings(
        host=host,
        port=port,
        public_url=url,
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        audience=os.environ.get(AUDIENCE, "").strip() or None,
        principal_claim=os.environ.get(PRINCIPAL_CLAIM, "").strip() or "email",
        # Local sign-in on a laptop: one process, so a key of its own is enough.
        session_key=session_key or secrets.token_hex(32),
        session_hours=_number(SESSION_HOURS, 12),
        vouch_key=Path(vouch).expanduser() if vouch else None,
        decisions_per_minute=int(_number(DECISIONS_PER_MINUTE, 30)),
    )
