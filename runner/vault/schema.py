"""The JSON Schema of QLRF_SECRETS_CONFIG, published as schemas/secrets-config.schema.json
(an editor completes the file with it; the worker checks it at start)."""

from __future__ import annotations

from typing import Any

from runner.vault.refs import FORMS, PATTERN

NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A file the worker reads; a relative path is taken from the configuration's folder.
_FILE = {"type": "string", "minLength": 1}


def _auth(method: str, description: str, required: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["method", *required],
        "additionalProperties": False,
        "properties": {"method": {"const": method}, **props},
    }


_MOUNT = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://qlrf.dev/schemas/secrets-config.schema.json",
    "title": "qlrf-run worker secrets configuration (QLRF_SECRETS_CONFIG)",
    "type": "object",
    "additionalProperties": False,
    "required": ["vault", "secrets"],
    "properties": {
        "vault": {
            "type": "object",
            "description": "The HashiCorp Vault or OpenBao server, and how the worker logs in",
            "additionalProperties": False,
            "required": ["auth"],
            "properties": {
                "address": {
                    "type": "string",
                    "pattern": r"^https?://[^\s/]+(/\S*)?$",
                    "description": (
                        "The vault's URL, e.g. https://vault.example.com:8200 (default: the "
                        "worker's VAULT_ADDR, else BAO_ADDR)"
                    ),
                },
                "namespace": {"type": "string", "description": "A Vault Enterprise namespace"},
                "ca_file": {**_FILE, "description": "CA bundle that signs the vault's TLS"},
                "timeout": {
                    "type": "string",
                    "pattern": r"^[0-9]+(ms|s|m)$",
                    "description": "How long one request may take (default 10s)",
                },
                "kv_cache": {
                    "type": "string",
                    "pattern": r"^[0-9]+(ms|s|m)$",
                    "description": (
                        "How long a KV secret read is used again, by steps starting "
                        "meanwhile (default 1s; 0s reads for every attempt)"
                    ),
                },
                "ssh_mount": {
                    **_MOUNT,
                    "description": "Where the SSH secrets engine is mounted (default ssh)",
                },
                "auth": {
                    "description": "How the worker logs in: token, approle or jwt",
                    "oneOf": [
                        _auth(
                            "token",
                            "A token read from a file",
                            ["token_file"],
                            token_file=_FILE,
                        ),
                        _auth(
                            "approle",
                            "AppRole: a role id and a secret id, each read from a file",
                            ["role_id_file", "secret_id_file"],
                            role_id_file=_FILE,
                            secret_id_file=_FILE,
                            mount={**_MOUNT, "description": "default approle"},
                        ),
                        _auth(
                            "jwt",
                            "A JWT (a workload identity token) read from a file, for ROLE",
                            ["role", "jwt_file"],
                            role={"type": "string", "minLength": 1},
                            jwt_file=_FILE,
                            mount={**_MOUNT, "description": "default jwt"},
                        ),
                    ],
                },
            },
        },
        "secrets": {
            "type": "object",
            "description": "Secret names ({{ secrets.NAME }} in runbooks) and where each is",
            "propertyNames": {"pattern": NAME},
            "additionalProperties": {
                "type": "string",
                "pattern": PATTERN,
                "description": FORMS,
                "patternErrorMessage": f"give {FORMS}",
            },
        },
    },
}
