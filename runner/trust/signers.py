"""The trust file: OpenSSH `allowed_signers` (the format git uses for SSH signing).

    alice@example.com ssh-ed25519 AAAAC3Nza... laptop
    bob@example.com,bob namespaces="qlrf" ecdsa-sha2-nistp256 AAAAE2Vj...
    worker-1 namespaces="qlrf-seal" ssh-ed25519 AAAAC3Nza...

Pure: parsed from text the workflow got from its trust snapshot, so a replay sees
the same principals. A line's `namespaces` limits what its key may sign (`qlrf`
for people's actions, `qlrf-seal` for a worker's seal); `cert-authority` lines
(certificates) are not supported and are left out.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from dataclasses import dataclass

from runner.trust.sshsig import KEY_TYPES

_KEY_PREFIXES = ("ssh-", "ecdsa-", "sk-", "rsa-")


@dataclass(frozen=True)
class Signer:
    principals: tuple[str, ...]
    key_type: str
    key: bytes
    namespaces: tuple[str, ...]  # empty: any namespace
    line: int

    def signs(self, namespace: str) -> bool:
        return not self.namespaces or any(
            fnmatch.fnmatchcase(namespace, p) for p in self.namespaces
        )


class TrustFileError(Exception):
    """The trust file cannot be read; the message names the line."""


def _tokens(line: str) -> list[str]:
    """Split on blanks outside double quotes (options hold quoted lists)."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch in " \t" and not quoted:
            if current:
                out.append("".join(current))
                current = []
        else:
            current.append(ch)
    if quoted:
        raise TrustFileError("an unclosed quote")
    if current:
        out.append("".join(current))
    return out


def _options(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in _split_options(text):
        name, _, value = part.partition("=")
        found[name.strip().lower()] = value.strip().strip('"')
    return found


def _split_options(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]


def parse(text: str) -> list[Signer]:
    """Every usable signer of the file; TrustFileError naming the first bad line."""
    signers: list[Signer] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = _tokens(line)
        except TrustFileError as exc:
            raise TrustFileError(f"line {number}: {exc}") from None
        if len(tokens) < 3:
            raise TrustFileError(f"line {number}: give principals, a key type and a key")
        principals = tuple(p for p in tokens[0].split(",") if p)
        options: dict[str, str] = {}
        rest = tokens[1:]
        if not rest[0].startswith(_KEY_PREFIXES):
            options = _options(rest[0])
            rest = rest[1:]
        if len(rest) < 2:
            raise TrustFileError(f"line {number}: no key after the options")
        if "cert-authority" in options:
            continue  # certificates are not supported: this line trusts no one here
        key_type, encoded = rest[0], rest[1]
        if key_type not in KEY_TYPES:
            raise TrustFileError(
                f"line {number}: key type {key_type} is not supported ({', '.join(KEY_TYPES)})"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise TrustFileError(f"line {number}: the key is not base64") from None
        namespaces = tuple(n.strip() for n in options.get("namespaces", "").split(",") if n.strip())
        signers.append(Signer(principals, key_type, key, namespaces, number))
    return signers


def principals_of(signers: list[Signer], key: bytes, namespace: str) -> list[str]:
    """The principals the trust file names for `key` in `namespace` (patterns left out:
    a pattern is not a person)."""
    found: list[str] = []
    for signer in signers:
        if signer.key == key and signer.signs(namespace):
            found.extend(p for p in signer.principals if not set(p) & set("*?!"))
    return found
