"""One vault session per worker, through hvac: log in once, renew the token before it
expires, read KV v2, lease and revoke dynamic secrets, sign ssh keys.

hvac is synchronous (requests): every call runs in a thread, so a slow vault never
holds the worker's event loop. Errors become VaultError with one of three kinds,
each naming the reference and never a value:
- SecretUnavailable: unreachable, sealed, timed out or 5xx (worth another attempt);
- SecretNotFound: no such path or key (another attempt meets it again);
- SecretDenied: the worker's policy does not allow it (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import hvac
import requests
from hvac import exceptions as hv

from runner.errors import QlrfError
from runner.files import FileRefused, read_text
from runner.vault.config import SecretsConfig, VaultSettings
from runner.vault.refs import KvRef, LeaseRef

log = logging.getLogger("qlrf.vault")

UNAVAILABLE = "SecretUnavailable"
NOT_FOUND = "SecretNotFound"
DENIED = "SecretDenied"
# Renew the worker's token, and each lease a step holds, when this share of its time
# to live is left.
RENEW_AT = 1 / 3
T = TypeVar("T")


def _now() -> float:
    return time.monotonic()


def _due(ttl: int) -> float | None:
    """When to renew something that lives `ttl` seconds from now (None: it never ends)."""
    return time.monotonic() + ttl * (1 - RENEW_AT) if ttl else None


class VaultError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry = kind == UNAVAILABLE


@dataclass(frozen=True)
class Lease:
    """A dynamic secret taken for one attempt."""

    id: str
    seconds: int
    renewable: bool
    data: dict[str, Any]


def _classify(exc: BaseException, what: str, address: str) -> VaultError:
    """The kind of a failed call, with a message that names `what` (a reference)."""
    if isinstance(exc, hv.Forbidden):
        return VaultError(
            DENIED,
            f"the vault refused {what} (403 permission denied): the worker's vault policy "
            "must allow it (docs/secrets.md lists what a worker needs)",
        )
    if isinstance(exc, hv.InvalidPath):
        return VaultError(NOT_FOUND, f"the vault has nothing at {what}")
    if isinstance(exc, hv.VaultDown):
        return VaultError(UNAVAILABLE, f"the vault at {address} is sealed or down; {what} waits")
    if isinstance(exc, hv.InvalidRequest):
        errors = "; ".join(str(e) for e in (exc.errors or [])) or "invalid request"
        return VaultError(NOT_FOUND, f"the vault cannot give {what}: {errors[:300]}")
    if isinstance(exc, hv.InternalServerError | hv.BadGateway | hv.RateLimitExceeded):
        return VaultError(
            UNAVAILABLE, f"the vault at {address} failed on {what}: {type(exc).__name__}"
        )
    if isinstance(exc, requests.exceptions.RequestException | OSError):
        return VaultError(
            UNAVAILABLE,
            f"cannot reach the vault at {address} for {what} ({type(exc).__name__})",
        )
    return VaultError(
        UNAVAILABLE, f"the vault at {address} failed on {what} ({type(exc).__name__})"
    )


class Vault:
    """The worker's session: a token, kept alive, shared by every activity."""

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: hvac.Client | None = None
        self._renew_by: float | None = None  # monotonic time; None: never expires
        self._renewable = False
        # KV secrets by (mount, path): the answer and until when it is used again, and
        # the reads under way, which steps starting together share.
        self._kv_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._kv_reading: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}

    # ---- the session -------------------------------------------------------------

    def _new_client(self) -> hvac.Client:
        s = self.settings
        verify: Any = s.ca_file if s.ca_file else True
        return hvac.Client(url=s.address, namespace=s.namespace, verify=verify, timeout=s.timeout)

    def _read(self, path: str, what: str) -> str:
        try:
            return read_text(path, what).strip()
        except FileRefused as exc:
            raise VaultError(DENIED, f"cannot log in to the vault: {exc}") from None

    def _login(self) -> None:
        auth = self.settings.auth
        client = self._new_client()
        if auth.method == "token":
            client.token = self._read(str(auth.token_file), "vault token_file")
            found = client.auth.token.lookup_self()["data"]
            ttl, renewable = int(found.get("ttl") or 0), bool(found.get("renewable"))
        else:
            if auth.method == "approle":
                answer = client.auth.approle.login(
                    self._read(str(auth.role_id_file), "vault role_id_file"),
                    self._read(str(auth.secret_id_file), "vault secret_id_file"),
                    mount_point=auth.mount or "approle",
                )["auth"]
            else:
                answer = client.auth.jwt.jwt_login(
                    str(auth.role),
                    self._read(str(auth.jwt_file), "vault jwt_file"),
                    path=auth.mount or "jwt",
                )["auth"]
            ttl, renewable = int(answer.get("lease_duration") or 0), bool(answer.get("renewable"))
        self._client = client
        self._renewable = renewable
        self._renew_by = _due(ttl)
        log.info(
            "logged in to the vault at %s (%s, token ttl %ss)",
            self.settings.address,
            auth.method,
            ttl,
        )

    def _session(self) -> hvac.Client:
        with self._lock:
            if self._client is None:
                self._login()
            else:
                self._renew_if_due()
            assert self._client is not None
            return self._client

    def _renew_if_due(self) -> None:
        if self._renew_by is not None and time.monotonic() >= self._renew_by:
            self._refresh()

    def _refresh(self) -> None:
        """Renew the token; log in again when it cannot be renewed (AppRole and JWT can)."""
        assert self._client is not None
        if self._renewable:
            try:
                answer = self._client.auth.token.renew_self()["auth"]
                ttl = int(answer.get("lease_duration") or 0)
                self._renew_by = _due(ttl)
                self._renewable = bool(answer.get("renewable"))
                log.info("renewed the vault token (ttl %ss)", ttl)
                # A token at its max TTL renews for less each time: log in anew near the end.
                if ttl and ttl < 5 and self.settings.auth.method != "token":
                    self._login()
                return
            except Exception as exc:  # any failure: fall back to a new login
                log.info("cannot renew the vault token (%s): logging in again", type(exc).__name__)
        if self.settings.auth.method == "token":
            self._renew_by = None  # a token file cannot log in again: use it while it lasts
            return
        self._login()

    def keep_alive(self) -> float | None:
        """Renew the token if it is due; seconds until it is due next (None: never)."""
        with self._lock:
            if self._client is None:
                return None
            self._renew_if_due()
            return None if self._renew_by is None else max(0.5, self._renew_by - time.monotonic())

    def _call(self, what: str, call: Callable[[hvac.Client], T]) -> T:
        try:
            try:
                return call(self._session())
            except (hv.Unauthorized, hv.Forbidden):
                # The token may have expired or been revoked since: log in once more.
                if self.settings.auth.method == "token":
                    raise
                with self._lock:
                    self._login()
                return call(self._session())
        except VaultError:
            raise
        except Exception as exc:  # each is classified; none escapes raw
            raise _classify(exc, what, self.settings.address) from None

    # ---- what activities ask -----------------------------------------------------

    def read_kv_secret(self, ref: KvRef) -> dict[str, Any]:
        """Every key of the KV v2 secret `ref` points into (its newest version)."""

        def read(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.read_secret_version(
                path=ref.path, mount_point=ref.mount, raise_on_deleted_version=True
            )

        answer = self._call(str(ref), read)
        return dict(((answer or {}).get("data") or {}).get("data") or {})

    def read_kv(self, ref: KvRef) -> str:
        return pick(ref, self.read_kv_secret(ref))

    async def kv(self, ref: KvRef) -> str:
        """The value at `ref`, read at most once per kv_cache seconds per secret: steps
        that start together share one read, and a rotated value is seen within
        kv_cache (0 turns the sharing off)."""
        key = (ref.mount, ref.path)
        now = _now()
        found = self._kv_cache.get(key)
        if found is not None and found[0] > now:
            return pick(ref, found[1])
        pending = self._kv_reading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.read_kv_secret, ref))
            self._kv_reading[key] = pending

            def done(task: asyncio.Future[dict[str, Any]], key: tuple[str, str] = key) -> None:
                self._kv_reading.pop(key, None)
                if not task.cancelled() and task.exception() is None and self.settings.kv_cache:
                    self._kv_cache[key] = (_now() + self.settings.kv_cache, task.result())

            pending.add_done_callback(done)
        return pick(ref, await asyncio.shield(pending))

    def lease(self, ref: LeaseRef) -> Lease:
        def read(client: hvac.Client) -> Any:
            found = client.read(ref.path)
            if found is None:
                raise hv.InvalidPath()
            return found

        answer = self._call(str(ref), read)
        return Lease(
            id=str(answer.get("lease_id") or ""),
            seconds=int(answer.get("lease_duration") or 0),
            renewable=bool(answer.get("renewable")),
            data=dict(answer.get("data") or {}),
        )

    def renew_lease(self, lease_id: str) -> int:
        answer = self._call(f"lease {lease_id}", lambda c: c.sys.renew_lease(lease_id))
        return int((answer or {}).get("lease_duration") or 0)

    def revoke(self, lease_id: str) -> None:
        self._call(f"lease {lease_id}", lambda c: c.sys.revoke_lease(lease_id))

    def sign_ssh(self, role: str, public_key: str, principal: str, ttl: str) -> str:
        def sign(client: hvac.Client) -> Any:
            return client.secrets.ssh.sign_ssh_key(
                name=role,
                public_key=public_key,
                valid_principals=principal,
                ttl=ttl,
                cert_type="user",
                mount_point=self.settings.ssh_mount,
            )

        answer = self._call(f"ssh role {role} at {self.settings.ssh_mount}/", sign)
        signed = ((answer or {}).get("data") or {}).get("signed_key")
        if not signed:
            raise VaultError(NOT_FOUND, f"ssh role {role}: the vault signed nothing")
        return str(signed)


def pick(ref: KvRef, data: dict[str, Any]) -> str:
    """KEY of a KV secret's data; SecretNotFound naming the keys it has (never values)."""
    if ref.key not in data:
        keys = ", ".join(sorted(map(str, data))[:20]) or "no keys"
        raise VaultError(NOT_FOUND, f"{ref}: the secret has no key '{ref.key}' (it has {keys})")
    value = data[ref.key]
    return value if isinstance(value, str) else _text(value)


def _text(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


# ---- the worker's one session ---------------------------------------------------------

_CONFIG: SecretsConfig | None = None
_VAULT: Vault | None = None


def configure(config: SecretsConfig | None) -> None:
    """Install the worker's configuration (None: no vault). The same settings again (a
    worker rebuilt for a server that moved) keep the session: its token, its cache."""
    global _CONFIG, _VAULT
    _CONFIG = config
    if config is None:
        _VAULT = None
    elif _VAULT is None or _VAULT.settings != config.vault:
        _VAULT = Vault(config.vault)


def start_session() -> str | None:
    """Log in as the worker starts. Credentials the vault refuses stop the worker (no
    step could succeed); an unreachable vault is only reported, since steps retry
    SecretUnavailable. Returns the warning to show, if any."""
    if _VAULT is None:
        return None
    try:
        _VAULT._call("the worker's login", lambda client: client)
    except VaultError as exc:
        if exc.kind == UNAVAILABLE:
            return f"the vault is not reachable yet ({exc}); steps that need it will retry"
        raise QlrfError(f"QLRF_SECRETS_CONFIG: cannot log in to the vault: {exc}") from None
    return None


def configured() -> SecretsConfig | None:
    return _CONFIG


def vault() -> Vault:
    if _VAULT is None:
        raise VaultError(NOT_FOUND, "this worker has no vault (QLRF_SECRETS_CONFIG is not set)")
    return _VAULT


async def keep_token_alive(stop: asyncio.Event) -> None:
    """Renew the worker's token before it expires, also while no step asks for a secret,
    until `stop` is set. Failures are logged and tried again: a step meets them itself."""
    while not stop.is_set():
        due = 30.0
        if _VAULT is not None:
            try:
                next_due = await asyncio.to_thread(_VAULT.keep_alive)
                due = 30.0 if next_due is None else next_due
            except Exception as exc:  # a renewal never kills the worker
                log.warning("cannot renew the vault token: %s", exc)
                due = 5.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(due, 30.0))
