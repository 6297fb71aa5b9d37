"""Secrets on the worker: resolve the references a step may hold, and mask what comes back.

A value comes from the worker's vault when QLRF_SECRETS_CONFIG maps NAME to one
(runner/vault/: a KV key read per attempt, or a dynamic secret leased per attempt,
whose fields a template names as `secrets.NAME.FIELD`); else from the environment
variable QLRF_SECRET_<NAME>; else from the file named by QLRF_SECRETS_FILE (lines of
NAME=value; # starts a comment). A name in the vault configuration wins.

References are resolved only at the positions the workflow marks as naming a
secret (runner/engine/render.py), never elsewhere: text from inputs or outputs
that looks like a reference stays text. Values never leave the activity: outputs,
errors and logs have them replaced by ***, and so are their reversed, base64
(at every alignment), URL-encoded and hex forms.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import functools
import json
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.exceptions import ApplicationError

from runner import secretref
from runner.contract import StepRequest
from runner.contract.messages import JsonObject
from runner.files import read_text
from runner.steps import leases
from runner.steps.trust import refuse_mismatch
from runner.vault import client as vault
from runner.vault.refs import KvRef

MASK = "***"
PREFIX = "QLRF_SECRET_"
# Secrets given to a worker in its environment, taken out of it as it starts
# (capture_environment): kept in this process's memory, inherited by nothing it starts.
_CAPTURED: dict[str, str] = {}


def capture_environment() -> int:
    """Move every QLRF_SECRET_* out of the environment into memory; how many. A step's
    processes get a clean environment anyway; this keeps the values out of every other
    process the worker starts too (its guardian, an embedded server)."""
    names = [name for name in os.environ if name.startswith(PREFIX)]
    for name in names:
        _CAPTURED[name.removeprefix(PREFIX)] = os.environ.pop(name)
    return len(names)


# Encoded forms of shorter values would mask ordinary text; the value itself is
# always masked.
ENCODED_MIN = 4
# Lines of a multi-line secret shorter than this (`-----END KEY-----` is longer) are
# too common to mask on their own.
LINE_MIN = 8


def _from_file() -> dict[str, str]:
    path = os.environ.get("QLRF_SECRETS_FILE")
    if not path:
        return {}
    values = {}
    for line in read_text(path, "QLRF_SECRETS_FILE").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def _base64_cores(raw: bytes) -> set[str]:
    """The parts of a value's base64 that do not depend on the bytes around it.

    Printed inside a longer base64 text, the value starts at one of three
    alignments; each gives a core that appears whatever surrounds it.
    """
    found: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found.add(encode(raw).decode())
        for offset in range(3):
            text = encode(b"\0" * offset + raw).decode()
            first = math.ceil(offset * 8 / 6)
            last = (offset + len(raw)) * 8 // 6
            found.add(text[first:last])
    return found


def encoded_forms(value: str) -> list[str]:
    """The value and the forms it may be printed in, longest first."""
    forms = {value}
    if len(value) >= ENCODED_MIN:
        raw = value.encode()
        forms.add(value[::-1])
        forms |= _base64_cores(raw)
        forms.add(urllib.parse.quote(value, safe=""))
        forms.add(urllib.parse.quote_plus(value))
        hexed = binascii.hexlify(raw).decode()
        forms |= {hexed, hexed.upper()}
        # A multi-line value (a key, a certificate) may be cut anywhere by a log's
        # tail: each of its lines is masked on its own as well.
        forms |= {line.strip() for line in value.splitlines() if len(line.strip()) >= LINE_MIN}
    return sorted(
        (f for f in forms if len(f) >= min(ENCODED_MIN, len(value))), key=len, reverse=True
    )


class SecretFailure(Exception):
    """A secret the step needs cannot be had; `kind` is the step's failure type."""

    def __init__(self, kind: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry = retry


class Resolver:
    """Resolves references for one activity attempt and remembers what to mask."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self._forms: list[str] | None = None
        self._file: dict[str, str] | None = None
        # Values this attempt read from the vault: text, or a dynamic secret's fields.
        self._fetched: dict[str, str | dict[str, Any]] = {}
        self.leased = False

    async def fetch(self, name: str) -> str:
        """The secret's value, read from the vault first when the worker maps it there."""
        await self._prefetch({name})
        return self.lookup(name)

    async def _prefetch(self, names: set[str]) -> None:
        config = vault.configured()
        if config is None:
            return
        for name in sorted(names):
            ref = config.secrets.get(name)
            if ref is None or name in self._fetched:
                continue
            try:
                if isinstance(ref, KvRef):
                    value: str | dict[str, Any] = await vault.vault().kv(ref)
                else:
                    attempt = leases.current()
                    if attempt is None:
                        # No one would revoke it: a worker built without LeaseInterceptor.
                        raise vault.VaultError(
                            vault.UNAVAILABLE, "this worker cannot revoke leases; none taken"
                        )
                    lease = await _taken(attempt, functools.partial(vault.vault().lease, ref))
                    self.leased = True
                    value = lease.data
            except vault.VaultError as exc:
                raise SecretFailure(
                    exc.kind, f"secret {name} ({ref}): {exc}", retry=exc.retry
                ) from None
            self._fetched[name] = value
            self._remember(value)

    def _remember(self, value: Any) -> None:
        """Mask every text inside a fetched value."""
        if isinstance(value, str):
            if value:
                self.values.add(value)
        elif isinstance(value, dict):
            for inner in value.values():
                self._remember(inner)
        elif isinstance(value, list):
            for inner in value:
                self._remember(inner)
        elif value is not None and not isinstance(value, bool):
            self.values.add(str(value))
        self._forms = None

    def lookup(self, name: str, field: str | None = None) -> str:
        value = self._fetched.get(name)
        return self._field(name, self._plain(name) if value is None else value, field)

    def _plain(self, name: str) -> str:
        """NAME from the worker's environment, else from its secrets file."""
        value = os.environ.get(f"{PREFIX}{name}", _CAPTURED.get(name))
        if value is None:
            if self._file is None:
                self._file = _from_file()
            value = self._file.get(name)
        if value is None:
            raise ApplicationError(
                f"secret '{name}' is not set on this worker; set QLRF_SECRET_{name} or add it "
                "to the file named by QLRF_SECRETS_FILE",
                type="SecretMissing",
                non_retryable=True,
            )
        if value:
            self.values.add(value)
            self._forms = None
        return value

    def _field(self, name: str, value: str | dict[str, Any], field: str | None) -> str:
        if isinstance(value, str):
            if field is None:
                return value
            raise ApplicationError(
                f"secrets.{name}.{field}: secret '{name}' is one value, not a mapping; write "
                f"secrets.{name}",
                type="SecretNotFound",
                non_retryable=True,
            )
        if field is None:
            text = json.dumps(value, sort_keys=True)  # the whole answer, for a script to parse
            self.values.add(text)
            self._forms = None
            return text
        if field not in value:
            keys = ", ".join(sorted(value)) or "none"
            raise ApplicationError(
                f"secrets.{name}.{field}: the dynamic secret '{name}' has no field '{field}' "
                f"(its fields: {keys})",
                type="SecretNotFound",
                non_retryable=True,
            )
        found = value[field]
        return found if isinstance(found, str) else json.dumps(found, sort_keys=True)

    def resolve(self, value: Any) -> Any:
        """Every reference inside `value` replaced by its secret."""
        if isinstance(value, str):
            return secretref.PATTERN.sub(lambda m: self.lookup(m.group(1), m.group(2)), value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    async def request(self, request: StepRequest) -> tuple[JsonObject, dict[str, str]]:
        """The step's parameters and script environment, with references resolved only
        where the workflow marked a position as naming a secret. A worker that trusts
        otherwise than the run refuses first (runner/steps/trust.py). Secrets kept in
        the vault are read (or leased) first, those of marked positions only."""
        refuse_mismatch(request.trust)
        if request.secret_params is None or request.secret_env is None:
            # Made by a version of the engine before positions were marked.
            await self._prefetch(_names(request.params) | _names(request.script_env))
            return self.resolve(request.params), self.resolve(request.script_env)
        wanted_names: set[str] = set()
        for path in request.secret_params:
            wanted_names |= _names(_at(request.params, list(path)))
        for key in request.secret_env:
            wanted_names |= _names(request.script_env.get(key))
        await self._prefetch(wanted_names)
        params = _copy(request.params)
        for path in request.secret_params:
            _resolve_at(params, list(path), self)
        wanted = set(request.secret_env)
        env = {k: (self.resolve(v) if k in wanted else v) for k, v in request.script_env.items()}
        return params, env

    def mask(self, value: Any) -> Any:
        if not self.values:
            return value
        if self._forms is None:
            forms: set[str] = set()
            for secret in self.values:
                forms.update(encoded_forms(secret))
            self._forms = sorted(forms, key=len, reverse=True)
        return _masked(value, self._forms)


_BREAK = re.compile(r"\r?\n")
_LINE_PIECE = re.compile(r"[^\r\n]+")


def _masked(value: Any, forms: Sequence[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, MASK)
        if "\n" in value:
            value = _masked_across_lines(value, forms)
        return value
    if isinstance(value, list):
        return [_masked(v, forms) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v, forms) for k, v in value.items()}
    return value


def _masked_across_lines(text: str, forms: Sequence[str]) -> str:
    """Mask the forms that a line break cuts: `base64` wraps its output at 76 columns,
    a PEM at 64, `xxd -p` at 60. The text is searched with its line breaks taken out,
    and each piece of a match, line by line, becomes the mask."""
    breaks = list(_BREAK.finditer(text))
    joined = _BREAK.sub("", text)
    # The break after stripped position p (a break sits before joined[p]), and how
    # many characters it took out.
    at: list[int] = []
    removed: list[int] = []
    total = 0
    for found in breaks:
        at.append(found.start() - total)
        total += found.end() - found.start()
        removed.append(total)

    def original(position: int) -> int:
        index = bisect.bisect_right(at, position) - 1
        return position + (removed[index] if index >= 0 else 0)

    spans: list[tuple[int, int]] = []
    for form in forms:
        if len(form) < ENCODED_MIN * 2:
            continue  # a short form across a break would mask ordinary text
        start = joined.find(form)
        while start >= 0:
            end = start + len(form)
            first, last = original(start), original(end - 1) + 1
            if "\n" in text[first:last]:  # on one line it was masked already
                spans.append((first, last))
            start = joined.find(form, end)
    if not spans:
        return text
    pieces: list[str] = []
    done = 0
    for first, last in sorted(spans):
        if first < done:
            first = done
        if first >= last:
            continue
        pieces.append(text[done:first])
        pieces.append(_LINE_PIECE.sub(MASK, text[first:last]))
        done = last
    pieces.append(text[done:])
    return "".join(pieces)


async def _taken(attempt: leases.Attempt, take: Callable[[], vault.Lease]) -> vault.Lease:
    """A lease, recorded with the attempt even when a cancel arrives while the vault is
    answering: the attempt's end revokes it either way."""
    task = asyncio.ensure_future(asyncio.to_thread(take))
    try:
        lease = await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            attempt.add(await task)
        raise
    attempt.add(lease)
    return lease


def _names(value: Any) -> set[str]:
    """The secret names referenced anywhere inside `value`."""
    return {match.group(1) for match in secretref.references(value)}


def _at(container: Any, path: list[str | int]) -> Any:
    for key in path:
        try:
            container = container[key]
        except (KeyError, IndexError, TypeError):
            return None
    return container


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _resolve_at(container: Any, path: list[str | int], resolver: Resolver) -> None:
    """Resolve the references under one position of `container`, in place."""
    *inner, last = path
    container = _at(container, inner)  # None when not there: nothing to resolve
    try:
        container[last] = resolver.resolve(container[last])
    except (KeyError, IndexError, TypeError):
        return


def unavailable(name: str) -> str | None:
    """Why secret NAME cannot be had on this worker, or None when it can. A name the
    vault configuration maps is the vault's to answer when it is used."""
    config = vault.configured()
    if config is not None and name in config.secrets:
        return None
    try:
        Resolver()._plain(name)
    except ApplicationError as exc:
        return str(exc.message)
    return None
