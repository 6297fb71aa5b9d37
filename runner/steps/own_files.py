"""The files that are qlrf-run's own on a worker: what no step, and no inventory, may read.

Each is named by a variable of the worker's environment (the secrets file, the seal
key, the trust file, ...), plus the files the vault configuration logs in with, the
operator's configuration file and the embedded defaults' state directory (the
Temporal dev server's database, the run store's data).
An inventory path that resolves to one of them is refused, and the step sandbox
(runner/steps/sandbox.py) hides them from every step.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.local.paths import config_path, state_dir
from runner.vault import client as vault

# Variables naming a file that holds a secret, a key, or whom the worker trusts.
FILE_VARIABLES = (
    "QLRF_SECRETS_FILE",
    "QLRF_SECRETS_CONFIG",
    "QLRF_SEAL_KEY",
    "QLRF_SIGNING_KEY",
    "QLRF_ALLOWED_SIGNERS",
    "QLRF_GROUPS_FILE",
    "QLRF_INTERNAL_KEY_FILE",
    "QLRF_NOTIFY_CONFIG",
    "QLRF_POLICY",
    "QLRF_WEB_VOUCH_KEY",
    "QLRF_WEB_SESSION_KEY_FILE",
    "QLRF_WEB_OIDC_CLIENT_SECRET_FILE",
    "QLRF_TLS_KEY",
)


def _real(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def own_files() -> list[str]:
    """The real paths of qlrf-run's own files and directories on this worker."""
    found = []
    for name in FILE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            found.append(_real(value))
    # The files the vault configuration logs in with (a token, a secret id, a JWT).
    config = vault.configured()
    if config is not None:
        found.extend(_real(path) for path in config.vault.auth.files())
    found.append(_real(config_path()))
    found.append(_real(state_dir()))
    return found


def is_own(real_path: str, own: list[str] | None = None) -> bool:
    """Whether `real_path` (already resolved) is one of them, or inside one."""
    for entry in own if own is not None else own_files():
        if real_path == entry or real_path.startswith(entry.rstrip("/") + "/"):
            return True
    return False
