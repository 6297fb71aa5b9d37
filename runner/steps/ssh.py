"""The `ssh` activity: a command or a bash script on a remote host, over asyncssh.

The rules of `shell` hold on the far side too:

- Templated values never become code. A `script`'s `{{ }}` arrive as exported,
  quoted variables ($QLRF_ARG_n), and each word of a `command` is quoted for the
  remote shell; the step's `env:` and its metadata (QLRF_RUN, QLRF_STEP,
  QLRF_ATTEMPT, QLRF_ITEM) are exported quoted as well.
- Host keys are always checked, against a known_hosts file, a secret holding
  known_hosts lines, or (`known_hosts: accept-new`, written explicitly) the first
  key this worker saw for the host. An unknown or changed key fails with
  HostKeyMismatch, which is not retried.
- The private key is a secret, resolved here and masked in everything returned.
- A cancel or the attempt's timeout closes the channel, and the remote process
  group is killed: the remote side runs the step under a small guard that kills
  the step's process group when its standard input closes, which is what closing
  the channel (or losing the connection) does. No pty, no reliance on the server
  accepting signal requests.
- Connections are kept per host, port, user and key, and reused by later steps
  and items, up to QLRF_SSH_MAX_CONNECTIONS (default 50) open at once; the least
  recently used idle one is closed to make room. A connection that broke is
  dropped and opened again before anything runs on it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import os
import shlex
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypedDict

from temporalio import activity

with warnings.catch_warnings():
    # asyncssh still supports DSA keys, and importing it makes cryptography warn that
    # DSA is deprecated, five lines on every command's stderr. qlrf-run never uses
    # DSA: the warning says nothing to its users.
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import asyncssh

from runner import durations
from runner.contract import SSH_ACTIVITY, StepRequest, StepResult
from runner.contract.messages import JsonObject
from runner.files import FileRefused, read_text
from runner.steps.common import fail, fetched, resolved, tail
from runner.steps.output import Captured, capture
from runner.steps.secrets import Resolver
from runner.steps.shell import FAILED_OUTPUT, _deadline, _progress, beating, ended, refuse_nul
from runner.vault import client as vault

DEFAULT_CONNECT_TIMEOUT = 15.0
MAX_CONNECTIONS_VARIABLE = "QLRF_SSH_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 50
ACCEPT_NEW = "accept-new"
KILL_GRACE_SECONDS = 5
# How long a vault-signed certificate is valid: long enough to log in, no longer.
DEFAULT_CERT_TTL = "5m"

# Runs the step in its own process group, and kills that group when the channel's
# standard input closes: a cancel, a timeout or a lost connection. $1 is the step.
# bash runs with --norc: Debian's bash reads bashrc when it sees SSH_CLIENT, even for
# `bash -c`, and a bashrc written for people fails under `set -u`. The guard's own
# stderr goes to /dev/null before the step starts (the step gets the channel's, as fd
# 4), so a job-control notice ("[1]+ Done") never reaches output, however fast the
# step ends.
GUARD = f"""
set -m
exec 3<&0 4>&2 2>/dev/null
bash --norc --noprofile -euo pipefail -c "$1" </dev/null 2>&4 3<&- 4>&- &
step=$!
exec 4>&-
{{ read -r _ <&3; kill -TERM -- "-$step"; sleep {KILL_GRACE_SECONDS}; kill -KILL -- "-$step"; }} &
guard=$!
exec 3<&-
wait "$step"; code=$?
kill "$guard"
exit "$code"
"""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    key: str  # the private key's text (a secret)
    known_hosts: str | None  # a file, or ACCEPT_NEW
    known_hosts_text: str | None  # known_hosts lines from a secret

    @property
    def name(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


class _Refused(Exception):
    """Why a host key was refused (raised inside asyncssh's validation)."""


# accept-new: the first key this worker saw for each host, by "[host]:port".
_FIRST_SEEN: dict[str, bytes] = {}


class _FirstKeyClient(asyncssh.SSHClient):
    """Trusts a host's first key, and refuses a different one afterwards."""

    def __init__(self, where: str) -> None:
        self.where = where

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        seen = _FIRST_SEEN.setdefault(self.where, key.public_data)
        return seen == key.public_data


class Pool:
    """Open connections by target, least recently used first; at most `limit` open."""

    def __init__(self) -> None:
        self.connections: OrderedDict[Target, asyncssh.SSHClientConnection] = OrderedDict()
        self.busy: dict[Target, int] = {}
        self.lock = asyncio.Lock()
        self.connects: dict[Target, asyncio.Lock] = {}

    @property
    def limit(self) -> int:
        try:
            return max(1, int(os.environ.get(MAX_CONNECTIONS_VARIABLE, DEFAULT_MAX_CONNECTIONS)))
        except ValueError:
            return DEFAULT_MAX_CONNECTIONS

    async def get(
        self, target: Target, trust: Trust, timeout: float
    ) -> asyncssh.SSHClientConnection:
        # One connect per target at a time: the items of a fan-out that start together
        # on one host wait for its first login, and share it, instead of each logging in.
        async with self._connecting(target):
            async with self.lock:
                found = self.connections.get(target)
                if found is not None and not _broken(found):
                    self.connections.move_to_end(target)
                    self.busy[target] = self.busy.get(target, 0) + 1
                    return found
                if found is not None:
                    self._drop(target)
                self._make_room()
            conn = await _connect(target, trust, timeout)
            async with self.lock:
                self.connections[target] = conn
                self.busy[target] = self.busy.get(target, 0) + 1
            return conn

    def _connecting(self, target: Target) -> asyncio.Lock:
        found = self.connects.get(target)
        if found is None:
            found = self.connects[target] = asyncio.Lock()
        return found

    def done(self, target: Target, *, broken: bool = False) -> None:
        self.busy[target] = max(0, self.busy.get(target, 1) - 1)
        if broken:
            self._drop(target)

    def _drop(self, target: Target) -> None:
        conn = self.connections.pop(target, None)
        if conn is not None:
            conn.close()
        connecting = self.connects.get(target)
        if connecting is not None and not connecting.locked():
            del self.connects[target]  # a fleet of many hosts keeps no lock per host

    def _make_room(self) -> None:
        while len(self.connections) >= self.limit:
            idle = next((t for t in self.connections if not self.busy.get(t)), None)
            if idle is None:
                return  # every one is in use: go over the cap rather than wait
            self._drop(idle)


# Connections belong to the event loop that opened them: one pool per loop.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = weakref.WeakKeyDictionary()


def _pool() -> Pool:
    loop = asyncio.get_running_loop()
    found = _POOLS.get(loop)
    if found is None:
        found = _POOLS[loop] = Pool()
    return found


def _broken(conn: asyncssh.SSHClientConnection) -> bool:
    return conn.is_closed()


@dataclass(frozen=True)
class Trust:
    """What a connection authenticates with, and the host keys it accepts."""

    key: asyncssh.SSHKey
    known_hosts: Any  # asyncssh's known hosts, as imported here
    first_key: bool  # accept-new: trust the first key seen for the host
    # A short-lived certificate for `key`, signed by the vault for this attempt only:
    # its connection is the attempt's own, never pooled for another.
    certificate: asyncssh.SSHCertificate | None = None


def _trust(secrets: Resolver, target: Target, key_name: str) -> Trust:
    """The key and the known hosts, read here so that no error shows what they hold:
    asyncssh names an unreadable line in its message, and the file could be any file
    of the worker's (a runbook picks it)."""
    try:
        key = asyncssh.import_private_key(target.key)
    except (asyncssh.KeyImportError, ValueError):
        fail(secrets, "SSHAuthError", f"secret {key_name} does not hold a usable private key")
    if target.known_hosts == ACCEPT_NEW:
        # No key known: asyncssh asks the client, which trusts the first it sees.
        return Trust(key, asyncssh.import_known_hosts(""), True)
    if target.known_hosts_text is not None:
        text, where = target.known_hosts_text, "the known_hosts secret"
    else:
        path = target.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        where = f"known_hosts file {path}"
        try:
            text = read_text(path, "known_hosts file")
        except FileRefused as exc:
            fail(
                secrets,
                "HostKeyMismatch",
                f"{exc}; give the file that holds {target.host}'s key, or known_hosts: "
                f"{ACCEPT_NEW}",
            )
    try:
        return Trust(key, asyncssh.import_known_hosts(text), False)
    except (ValueError, asyncssh.KeyImportError):
        line = _bad_line(text)
        fail(secrets, "HostKeyMismatch", f"{where} is not in known_hosts form (line {line})")


def _bad_line(text: str) -> int:
    """The number of the first line asyncssh cannot read (its own message quotes it)."""
    for number, line in enumerate(text.splitlines(), 1):
        try:
            asyncssh.import_known_hosts(line)
        except (ValueError, asyncssh.KeyImportError):
            return number
    return 0


async def _connect(target: Target, trust: Trust, timeout: float) -> asyncssh.SSHClientConnection:
    client_factory = None
    if trust.first_key:
        where = f"[{target.host}]:{target.port}"
        client_factory = lambda: _FirstKeyClient(where)  # noqa: E731 - asyncssh wants a factory
    return await asyncssh.connect(
        target.host,
        port=target.port,
        username=target.user,
        client_keys=[(trust.key, trust.certificate) if trust.certificate else trust.key],
        known_hosts=trust.known_hosts,
        client_factory=client_factory,
        agent_path=None,  # only the step's own key: never the worker's agent
        config=[],  # and never the worker's ~/.ssh/config
        connect_timeout=timeout,
        keepalive_interval=15,
        keepalive_count_max=3,
    )


async def _private_key(secrets: Resolver, name: str) -> str:
    value = await fetched(secrets, name)
    if "-----BEGIN" in value:
        return value
    # A secrets file holds one line per secret: the key may come base64-encoded.
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if "-----BEGIN" not in decoded:
        fail(
            secrets,
            "SSHAuthError",
            f"secret {name} does not hold a private key (OpenSSH or PEM text, or its base64)",
        )
    secrets.values.add(decoded)  # masked like the secret itself
    return decoded


async def _certified(
    secrets: Resolver, wanted: JsonObject, user: str
) -> tuple[str, asyncssh.SSHCertificate]:
    """An ephemeral key, and the vault's SSH engine's certificate for it (principal
    `user`, a short TTL): a new pair for every attempt, nothing kept on the worker."""
    role, ttl = str(wanted["vault_role"]), str(wanted.get("ttl") or DEFAULT_CERT_TTL)
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key().decode()
    try:
        signed = await asyncio.to_thread(vault.vault().sign_ssh, role, public, user, ttl)
    except vault.VaultError as exc:
        why = f"certificate for {user} (vault role {role}): {exc}"
        fail(secrets, exc.kind, why, retry=exc.retry)
    try:
        certificate = asyncssh.import_certificate(signed)
    except (asyncssh.KeyImportError, ValueError):
        fail(secrets, "SSHAuthError", f"vault role {role} gave no usable ssh certificate")
    text = key.export_private_key().decode()
    secrets.values.add(text)  # masked like any key
    return text, certificate


async def _target(
    secrets: Resolver, params: JsonObject
) -> tuple[Target, asyncssh.SSHCertificate | None]:
    port = params.get("port", 22)
    try:
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError
    except (TypeError, ValueError):
        fail(secrets, "SSHConnectionError", f"port {port!r} is not a TCP port")
    user = str(params.get("user") or os.environ.get("USER") or "root")
    certificate = None
    if isinstance(params.get("certificate"), dict):
        key, certificate = await _certified(secrets, params["certificate"], user)
    else:
        key = await _private_key(secrets, str(params["key_secret"]))
    known_text = None
    if params.get("known_hosts_secret"):
        known_text = await fetched(secrets, str(params["known_hosts_secret"]))
    known = params.get("known_hosts")
    return Target(str(params["host"]), port, user, key, known, known_text), certificate


def remote_command(request: StepRequest, params: JsonObject, script_env: dict[str, str]) -> str:
    """The command line sent to the host: the guard, and the step as its quoted argument."""
    attempt = activity.info().attempt
    env = {str(k): str(v) for k, v in (params.get("env") or {}).items()}
    env.update(script_env)
    env.update({"QLRF_RUN": request.run_id, "QLRF_STEP": request.step})
    env["QLRF_ATTEMPT"] = str(attempt)
    if request.item is not None:
        env["QLRF_ITEM"] = request.item
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    if "command" in params:
        body = "exec " + " ".join(shlex.quote(str(word)) for word in params["command"])
    else:
        body = str(params["script"])
    step = exports + body
    return f"bash --norc --noprofile -c {shlex.quote(GUARD)} qlrf-ssh {shlex.quote(step)}"


def _connect_timeout(secrets: Resolver, params: JsonObject) -> float:
    text = params.get("connect_timeout")
    if text is None:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        return durations.parse_ms(str(text)) / 1000
    except ValueError as exc:
        fail(secrets, "SSHConnectionError", f"connect_timeout: {exc}")


async def _open(
    secrets: Resolver, target: Target, trust: Trust, timeout: float
) -> asyncssh.SSHClientConnection:
    try:
        if trust.certificate is not None:
            return await _connect(target, trust, timeout)
        return await _pool().get(target, trust, timeout)
    except asyncssh.HostKeyNotVerifiable as exc:
        fail(
            secrets,
            "HostKeyMismatch",
            f"{target.name}: the host's key is not the one known for it ({exc.reason}); "
            "if the host was rebuilt, replace its line in known_hosts",
        )
    except asyncssh.PermissionDenied:
        fail(
            secrets,
            "SSHAuthError",
            f"{target.name}: the host refused the "
            + (
                "vault's certificate (permission denied); the host's sshd must trust the "
                "vault's SSH CA (TrustedUserCAKeys) and the role must allow this user"
                if trust.certificate is not None
                else "key (permission denied); add its public key to the user's authorized_keys"
            ),
        )
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        fail(secrets, "SSHConnectionError", f"{target.name}: cannot connect: {_reason(exc)}")
    except Exception as exc:
        # Anything else: named by its type only, its message could quote what it read.
        fail(secrets, "SSHConnectionError", f"{target.name}: cannot connect ({type(exc).__name__})")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__


@activity.defn(name=SSH_ACTIVITY)
async def ssh(request: StepRequest) -> StepResult:
    secrets = Resolver()
    params, script_env = await resolved(secrets, request)
    target, certificate = await _target(secrets, params)
    key_name = str(params.get("key_secret") or "of the certificate")
    trust = dataclasses.replace(_trust(secrets, target, key_name), certificate=certificate)
    timeout = _connect_timeout(secrets, params)
    command = remote_command(request, params, script_env)
    refuse_nul(secrets, {"command": command, "host": target.host, "user": target.user})
    conn = await _open(secrets, target, trust, timeout)
    pooled = certificate is None
    broken = False
    try:
        try:
            process = await conn.create_process(command, encoding=None)
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, OSError) as exc:
            if not pooled:
                broken = True
                fail(secrets, "SSHConnectionError", f"{target.name}: {_reason(exc)}")
            # The kept connection broke since its last use: open a new one, once.
            _pool().done(target, broken=True)
            conn = await _open(secrets, target, trust, timeout)
            try:
                process = await conn.create_process(command, encoding=None)
            except (asyncssh.Error, OSError) as exc:
                broken = True
                fail(secrets, "SSHConnectionError", f"{target.name}: {_reason(exc)}")
        outcome = await _run(secrets, request, target, process)
        if outcome.get("lost"):
            broken = True
    finally:
        if pooled:
            _pool().done(target, broken=broken)
        else:
            conn.close()
    return _finish(secrets, params, target, outcome)


class _Outcome(TypedDict):
    """How a remote command ended, as read from its channel."""

    timed_out: bool
    exit_code: int | None
    lost: bool  # the connection went before the command ended
    signal: Any
    stdout: str
    stderr: str
    raw: bytes


async def _run(secrets: Resolver, request: StepRequest, target: Target, process: Any) -> _Outcome:
    out, err = Captured(), Captured()
    readers = asyncio.gather(capture(process.stdout, out), capture(process.stderr, err))
    deadline, _ = _deadline()
    try:
        timed_out = await beating(
            process.wait_closed(), deadline, lambda: _progress(secrets, request, out, err)
        )
    except asyncio.CancelledError:
        process.close()  # the guard on the host kills the step's process group
        readers.cancel()
        raise
    if timed_out:
        process.close()
        readers.cancel()
    else:
        with contextlib.suppress(asyncssh.Error, OSError):
            await readers
    status = process.exit_status
    return {
        "timed_out": timed_out,
        "exit_code": status,
        "lost": status is None and not timed_out,
        "signal": process.exit_signal,
        "stdout": tail(bytes(out.data), secrets),
        "stderr": tail(bytes(err.data), secrets),
        "raw": bytes(out.data),
    }


def _finish(secrets: Resolver, params: JsonObject, target: Target, outcome: _Outcome) -> StepResult:
    stdout, stderr = outcome["stdout"], outcome["stderr"]
    if outcome["timed_out"]:
        limit = activity.info().start_to_close_timeout
        fail(
            secrets,
            "CommandTimedOut",
            f"{target.name}: the command ran out of its {limit} start_to_close timeout and "
            "was stopped",
            stdout=stdout[-FAILED_OUTPUT:],
            stderr=stderr[-FAILED_OUTPUT:],
        )
    if outcome["lost"]:
        fail(
            secrets,
            "SSHConnectionError",
            f"{target.name}: the connection was lost before the command ended",
            stdout=stdout[-FAILED_OUTPUT:],
            stderr=stderr[-FAILED_OUTPUT:],
        )
    code = outcome["exit_code"]
    assert code is not None  # a command that was not lost has its exit status
    return ended(secrets, params, code, outcome["raw"], stdout, stderr, f"{target.name}: ")
