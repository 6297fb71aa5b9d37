"""Where a worker gets the key its workflows authenticate their messages with
(runner/trust/internal.py).

QLRF_INTERNAL_KEY (the key itself, at least 16 characters) or QLRF_INTERNAL_KEY_FILE
(a file holding it) gives it; every worker of a cluster must have the same one, and
signed mode requires one of them. Without either, a worker uses the key of this
machine's user, kept in the state directory (made on first use, readable by that
user only): enough for the embedded defaults and for workers on one machine.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from runner.errors import QlrfError
from runner.files import FileRefused, read_bytes
from runner.local.paths import state_dir

KEY_VARIABLE = "QLRF_INTERNAL_KEY"
FILE_VARIABLE = "QLRF_INTERNAL_KEY_FILE"
MIN_LENGTH = 16
_captured: str | None = None
_source = "none yet"


def source() -> str:
    """Where the worker's key came from, as its start line says it."""
    return _source


def capture() -> None:
    """Move QLRF_INTERNAL_KEY out of the environment (nothing the worker starts
    inherits it)."""
    global _captured
    value = os.environ.pop(KEY_VARIABLE, None)
    if value is not None:
        _captured = value


def load(*, signed: bool) -> tuple[bytes, str]:
    """The key, and where it came from (for the worker's start line)."""
    global _source
    key, _source = _load(signed)
    return key, _source


def _load(signed: bool) -> tuple[bytes, str]:
    given = os.environ.get(KEY_VARIABLE, _captured)
    if given is not None:
        return _checked(given.strip().encode(), KEY_VARIABLE), KEY_VARIABLE
    path = os.environ.get(FILE_VARIABLE, "").strip()
    if path:
        try:
            data = read_bytes(path, f"{FILE_VARIABLE} file", 64 * 1024)
        except FileRefused as exc:
            raise QlrfError(f"{FILE_VARIABLE}: {exc}") from None
        return _checked(data.strip(), FILE_VARIABLE), f"{FILE_VARIABLE} {path}"
    if signed:
        raise QlrfError(
            f"signed mode authenticates the messages between qlrf-run's workflows with a key "
            f"every worker shares: set {KEY_VARIABLE} (or {FILE_VARIABLE}) on each worker, "
            "e.g. to the output of `openssl rand -hex 32`"
        )
    return _machine_key(), f"this machine's key ({state_dir() / 'internal.key'})"


def _checked(key: bytes, source: str) -> bytes:
    if len(key) < MIN_LENGTH:
        raise QlrfError(f"{source} is {len(key)} characters; give at least {MIN_LENGTH}")
    return key


def _machine_key() -> bytes:
    path = state_dir() / "internal.key"
    try:
        return _checked(path.read_bytes().strip(), str(path))
    except FileNotFoundError:
        pass
    fresh = secrets.token_hex(32).encode()
    temporary = path.with_name(f"internal.key.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(fresh + b"\n")
    try:
        os.link(temporary, path)  # the first of several workers starting at once wins
    except FileExistsError:
        pass
    finally:
        Path(temporary).unlink(missing_ok=True)
    return _checked(path.read_bytes().strip(), str(path))
