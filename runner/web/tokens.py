"""Who a request is: bearer tokens from the identity provider, checked here.

A JWT access token is checked against the issuer's JWKS (`iss`, `aud`, `exp`, `nbf`,
signature); an opaque one at the issuer's `userinfo` endpoint, whose answer is kept
for at most 5 minutes. qlrf-run issues and stores no token of its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections import OrderedDict
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from runner.trust import claims
from runner.web.settings import Settings
from runner.web.vouch import Person

USERINFO_SECONDS = 300  # the longest an opaque token's answer is trusted
METADATA_SECONDS = 600
JWKS_REFRESH_SECONDS = 60  # an unknown key id fetches the JWKS again, at most this often
CACHE_ENTRIES = 10_000
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class Unauthorized(Exception):
    """The token does not prove anyone; the message says why (401)."""


class ProviderDown(Exception):
    """The identity provider does not answer (503); the message names it."""


def _looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


class Provider:
    """The issuer's discovery document, its keys, and the tokens it vouches for."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        assert settings.issuer is not None
        self.settings = settings
        self.issuer = settings.issuer
        self.http = http
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._userinfo: OrderedDict[str, tuple[float, Person]] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    async def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.get(url, timeout=5.0, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderDown(
                f"the identity provider at {self.issuer} does not answer ({type(exc).__name__})"
            ) from None

    async def metadata(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._metadata is not None and now - self._metadata[0] < METADATA_SECONDS:
            return self._metadata[1]
        answer = await self._get(self.discovery_url)
        try:
            found = answer.json() if answer.status_code == 200 else None
        except ValueError:
            found = None
        if not isinstance(found, dict) or found.get("issuer", "").rstrip("/") != self.issuer:
            raise ProviderDown(
                f"{self.discovery_url} gave no discovery document for issuer {self.issuer} "
                f"(HTTP {answer.status_code})"
            )
        self._metadata = (now, found)
        return found

    async def keys(self, *, refresh: bool = False) -> KeySet:
        now = time.monotonic()
        if self._keys is not None and not (refresh and now - self._keys[0] > JWKS_REFRESH_SECONDS):
            return self._keys[1]
        meta = await self.metadata()
        answer = await self._get(str(meta.get("jwks_uri")))
        try:
            found = KeySet.import_key_set(answer.json())
        except (ValueError, JoseError) as exc:
            raise ProviderDown(f"the issuer's JWKS does not read ({exc})") from None
        self._keys = (now, found)
        return found

    def principal_of(self, found: dict[str, Any]) -> str:
        claim = self.settings.principal_claim
        principal = found.get(claim)
        if not isinstance(principal, str) or not principal:
            raise Unauthorized(f"the token carries no {claim!r} claim to name its person by")
        if claim == "email" and found.get("email_verified") is False:
            # An address the person typed and nobody checked names nobody.
            raise Unauthorized("the identity provider has not verified this e-mail address")
        if not claims.names_someone(principal):  # what the run would refuse to vouch
            raise Unauthorized(f"the token's {claim!r} claim is not a name")
        return principal

    async def bearer(self, token: str) -> Person:
        """The person a bearer token proves; Unauthorized or ProviderDown otherwise."""
        if _looks_like_jwt(token):
            return await self._jwt(token)
        return await self._opaque(token)

    async def _jwt(self, token: str) -> Person:
        keys = await self.keys()
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            except JoseError:
                # A key the issuer rotated in since: fetch its keys once more.
                decoded = jwt.decode(token, await self.keys(refresh=True), algorithms=ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise Unauthorized(f"the token's signature does not verify ({exc})") from None
        audience = self.settings.audience or self.settings.client_id
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": str(audience)},
            exp={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthorized(f"the token is refused: {exc.description or exc.error}") from None
        found = dict(decoded.claims)
        return Person(
            self.principal_of(found),
            verified=True,
            issuer=self.issuer,
            subject=str(found.get("sub") or ""),
            auth_time=int(found.get("auth_time") or found.get("iat") or 0) or None,
            how="bearer",
        )

    async def _opaque(self, token: str) -> Person:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        kept = self._userinfo.get(digest)
        if kept is not None and now - kept[0] < USERINFO_SECONDS:
            return kept[1]
        meta = await self.metadata()
        endpoint = meta.get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            raise Unauthorized("the issuer has no userinfo endpoint: send a JWT access token")
        answer = await self._get(endpoint, headers={"Authorization": f"Bearer {token}"})
        if 400 <= answer.status_code < 500:
            raise Unauthorized("the issuer does not know this token (expired or revoked)")
        try:
            found = answer.json() if answer.status_code == 200 else None
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise ProviderDown(f"the issuer's userinfo answered HTTP {answer.status_code}")
        person = Person(
            self.principal_of(found),
            verified=True,
            issuer=self.issuer,
            subject=str(found.get("sub") or ""),
            how="bearer",
        )
        self._userinfo[digest] = (now, person)
        while len(self._userinfo) > CACHE_ENTRIES:
            self._userinfo.popitem(last=False)
        return person
