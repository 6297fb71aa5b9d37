"""Secrets on the worker: resolve the markers the workflow sent, and mask values in results.

A value comes from the environment variable QLRF_SECRET_<NAME>, else from the file
named by QLRF_SECRETS_FILE (lines of NAME=value; # starts a comment). Values never
leave the activity: outputs and error messages have them replaced by ***.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from runner import secretref

MASK = "***"


def _from_file() -> dict[str, str]:
    path = os.environ.get("QLRF_SECRETS_FILE")
    if not path:
        return {}
    values = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


class Resolver:
    """Resolves markers for one activity attempt and remembers what to mask."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self._file: dict[str, str] | None = None

    def lookup(self, name: str) -> str:
        value = os.environ.get(f"QLRF_SECRET_{name}")
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
        return value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            return secretref.PATTERN.sub(lambda m: self.lookup(m.group(1)), value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def mask(self, value: Any) -> Any:
        if not self.values:
            return value
        if isinstance(value, str):
            for secret in sorted(self.values, key=len, reverse=True):
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        return value
