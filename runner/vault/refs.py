"""What a name in QLRF_SECRETS_CONFIG's `secrets:` points at.

- `vault:MOUNT/data/PATH#KEY`: one key of a KV version 2 secret, read per attempt;
- `vault-lease:PATH`: a dynamic secret (a database login, cloud credentials): the
  vault's whole answer, a mapping such as {username, password}, leased per attempt
  and revoked when the attempt ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KV_PREFIX = "vault:"
LEASE_PREFIX = "vault-lease:"
_SEGMENT = r"[A-Za-z0-9_.@-]+"
_KV = re.compile(
    rf"^vault:(?P<mount>{_SEGMENT})/data/(?P<path>{_SEGMENT}(?:/{_SEGMENT})*)#(?P<key>[^#\s]+)$"
)
_LEASE = re.compile(rf"^vault-lease:(?P<path>{_SEGMENT}(?:/{_SEGMENT})*)$")
# For the config's JSON Schema: either form, spelled out.
PATTERN = (
    rf"^(vault:{_SEGMENT}/data/{_SEGMENT}(/{_SEGMENT})*#[^#\s]+"
    rf"|vault-lease:{_SEGMENT}(/{_SEGMENT})*)$"
)
FORMS = "vault:MOUNT/data/PATH#KEY (KV version 2) or vault-lease:PATH (a dynamic secret)"


@dataclass(frozen=True)
class KvRef:
    """One key of a KV v2 secret."""

    mount: str
    path: str
    key: str

    def __str__(self) -> str:
        return f"{KV_PREFIX}{self.mount}/data/{self.path}#{self.key}"


@dataclass(frozen=True)
class LeaseRef:
    """A dynamic secret, read (and so leased) at PATH."""

    path: str

    def __str__(self) -> str:
        return f"{LEASE_PREFIX}{self.path}"


Ref = KvRef | LeaseRef


def parse(text: str) -> Ref | None:
    """The reference `text` spells, or None when it is not one."""
    found = _KV.match(text)
    if found:
        return KvRef(found["mount"], found["path"], found["key"])
    found = _LEASE.match(text)
    if found:
        return LeaseRef(found["path"])
    return None
