"""The trust file: OpenSSH `allowed_signers` (the format git uses for SSH signing).

    alice@example.com ssh-ed25519 AAAAC3Nza... laptop
    bob@example.com,bob namespaces="qlrf" ecdsa-sha2-nistp256 AAAAE2Vj...
    worker-1 namespaces="qlrf-seal" ssh-ed25519 AAAAC3Nza...

Pure: parsed from text the workflow got from its trust snapshot, so a replay sees
the same principals. A line's `namespaces` limits what its key may sign (`qlrf`
for people's actions, `qlrf-seal` for a worker's seal, `qlrf-vouch` for a service
that signs for the people it signed in, its principals then patterns such as
`*@example.com`). A `cert-authority` line trusts the certificates its CA key signs,
for the certificate's principals that match the line's patterns, within the line's
`valid-after`/`valid-before` (UTC) and the certificate's own validity.

    *@example.com cert-authority,namespaces="qlrf",valid-before="20271231" ssh-ed25519 AAAA...
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime

from runner.trust.sshsig import KEY_TYPES, Certificate

_KEY_PREFIXES = ("ssh-", "ecdsa-", "sk-", "rsa-")


@dataclass(frozen=True)
class Signer:
    principals: tuple[str, ...]
    key_type: str
    key: bytes
    namespaces: tuple[str, ...]  # empty: any namespace
    line: int
    authority: bool = False  # a cert-authority line: `key` is a CA's
    valid_after: datetime | None = None
    valid_before: datetime | None = None

    def signs(self, namespace: str) -> bool:
        return not self.namespaces or any(
            fnmatch.fnmatchcase(namespace, p) for p in self.namespaces
        )

    def names(self, principal: str) -> bool:
        """Whether `principal` matches the line's patterns (`!pattern` excludes)."""
        return matches(self.principals, principal)


def matches(patterns: tuple[str, ...], name: str) -> bool:
    """allowed_signers' pattern list: some pattern matches and no negated one does."""
    found = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(name, pattern[1:]):
                return False
        elif fnmatch.fnmatchcase(name, pattern):
            found = True
    return found


def _when(text: str, number: int, option: str) -> datetime:
    """valid-after/valid-before: YYYYMMDD[HHMM[SS]][Z], read as UTC."""
    digits = text.removesuffix("Z")
    shapes = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    try:
        return datetime.strptime(digits, shapes[len(digits)]).replace(tzinfo=UTC)
    except (KeyError, ValueError):
        raise TrustFileError(
            f"line {number}: {option}={text!r} is not a time (YYYYMMDD[HHMM[SS]][Z])"
        ) from None


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
        after, before = options.get("valid-after"), options.get("valid-before")
        signers.append(
            Signer(
                principals,
                key_type,
                key,
                namespaces,
                number,
                authority="cert-authority" in options,
                valid_after=_when(after, number, "valid-after") if after else None,
                valid_before=_when(before, number, "valid-before") if before else None,
            )
        )
    return signers


def vouchers(signers: list[Signer], key: bytes, namespace: str) -> list[Signer]:
    """The lines that let `key` vouch in `namespace`: named there explicitly (a line
    for any namespace vouches for no one)."""
    return [s for s in signers if s.key == key and not s.authority and namespace in s.namespaces]


def certified(
    signers: list[Signer], certificate: Certificate, namespace: str, now: datetime
) -> tuple[list[str], str]:
    """The principals a certificate proves in `namespace` at `now`, or ([], why not)."""
    lines = [
        s for s in signers if s.authority and s.key == certificate.ca_key and s.signs(namespace)
    ]
    if not lines:
        return [], f"the certificate's CA is not on a cert-authority line for {namespace}"
    stamp = int(now.timestamp())
    if not certificate.valid_after <= stamp < certificate.valid_before:
        return [], "the certificate is outside its validity (valid-after/valid-before)"
    if certificate.critical_options:
        return [], "the certificate has critical options, which qlrf-run does not honour"
    found: list[str] = []
    for line in lines:
        if line.valid_after is not None and now < line.valid_after:
            continue
        if line.valid_before is not None and now >= line.valid_before:
            continue
        found += [p for p in certificate.principals if line.names(p) and p not in found]
    if not found:
        return [], (
            "the certificate's principals "
            f"({', '.join(certificate.principals) or 'none'}) are not trusted by its CA's "
            "line now (its patterns, valid-after, valid-before)"
        )
    return found, ""


def principals_of(signers: list[Signer], key: bytes, namespace: str) -> list[str]:
    """The principals the trust file names for `key` in `namespace` (patterns left out:
    a pattern is not a person)."""
    found: list[str] = []
    for signer in signers:
        if signer.key == key and not signer.authority and signer.signs(namespace):
            found.extend(p for p in signer.principals if not set(p) & set("*?!"))
    return found
