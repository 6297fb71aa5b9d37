"""The worker's vault settings, from a QLRF_SECRETS_CONFIG that its schema accepted
(runner/dsl/secrets_config.py reads and checks the file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from runner.vault import refs

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_KV_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Auth:
    method: str  # token | approle | jwt
    token_file: str | None = None
    role_id_file: str | None = None
    secret_id_file: str | None = None
    role: str | None = None
    jwt_file: str | None = None
    mount: str | None = None

    def files(self) -> list[str]:
        """The worker's own files that hold credentials: never a step's to read."""
        found = (self.token_file, self.role_id_file, self.secret_id_file, self.jwt_file)
        return [f for f in found if f]


@dataclass(frozen=True)
class VaultSettings:
    address: str
    auth: Auth
    namespace: str | None = None
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    ssh_mount: str = "ssh"
    # Seconds a KV secret's answer is used again (0: every attempt reads it).
    kv_cache: float = DEFAULT_KV_CACHE_SECONDS


@dataclass(frozen=True)
class SecretsConfig:
    vault: VaultSettings
    secrets: dict[str, refs.Ref] = field(default_factory=dict)
    file: str = ""  # where it was read, for messages


def _seconds(text: str | None, default: float, least: float = 0.1) -> float:
    if not text:
        return default
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return max(least, int(text[: -len(suffix)]) * scale)
    return default


class NoAddress(ValueError):
    """Neither the file nor the worker's environment says where the vault is."""


def from_data(data: dict[str, Any], file: str) -> SecretsConfig:
    """Settings from data the schema accepted. A relative file is taken from the folder
    of `file`; a missing address from VAULT_ADDR, else BAO_ADDR (as the vault CLI does)."""
    vault = data["vault"]
    auth = vault["auth"]
    folder = os.path.dirname(os.path.abspath(file)) if file else os.getcwd()

    def at(path: str | None) -> str | None:
        return os.path.join(folder, os.path.expanduser(path)) if path else None

    address = vault.get("address") or os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR")
    if not address:
        raise NoAddress(
            "vault.address is not set, nor VAULT_ADDR or BAO_ADDR in the worker's "
            "environment; give the vault's URL"
        )
    settings = VaultSettings(
        address=str(address).rstrip("/"),
        auth=Auth(
            method=auth["method"],
            token_file=at(auth.get("token_file")),
            role_id_file=at(auth.get("role_id_file")),
            secret_id_file=at(auth.get("secret_id_file")),
            role=auth.get("role"),
            jwt_file=at(auth.get("jwt_file")),
            mount=auth.get("mount"),
        ),
        namespace=vault.get("namespace"),
        ca_file=at(vault.get("ca_file")),
        timeout=_seconds(vault.get("timeout"), DEFAULT_TIMEOUT_SECONDS),
        kv_cache=_seconds(vault.get("kv_cache"), DEFAULT_KV_CACHE_SECONDS, least=0.0),
        ssh_mount=vault.get("ssh_mount") or "ssh",
    )
    found: dict[str, refs.Ref] = {}
    for name, text in (data.get("secrets") or {}).items():
        ref = refs.parse(str(text))
        if ref is None:  # the schema's pattern refuses it first
            raise ValueError(f"secrets.{name}: give {refs.FORMS}")
        found[name] = ref
    return SecretsConfig(settings, found, file)
