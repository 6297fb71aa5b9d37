"""The service vouches: every action of a signed-in person is signed with the
service's SSH key (QLRF_WEB_VOUCH_KEY) as SSHSIG in namespace `qlrf-vouch`, over the
same claim the CLI signs plus `principal` and `via`. The run verifies it against its
trust file, where the key's line names whom the service may vouch for
(`*@example.com namespaces="qlrf-vouch" ssh-ed25519 AAAA... qlrf-web`).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runner.client.signing import VALID_FOR
from runner.errors import QlrfError
from runner.times import iso
from runner.trust import claims, sshsig
from runner.web.settings import VOUCH_KEY


@dataclass(frozen=True)
class Person:
    """Who is signed in: their principal, and how the service knows them."""

    principal: str
    verified: bool  # signed in through the identity provider (else a local name)
    issuer: str | None = None
    subject: str | None = None
    auth_time: int | None = None
    how: str = "session"  # session | bearer | slack
    service: str = "web"  # what vouches: the web page, or a Slack click (runner/web/slack.py)

    @property
    def via(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "issuer": self.issuer,
            "subject": self.subject,
            "auth_time": self.auth_time,
        }


class Voucher:
    """The service's ed25519 key, signing in-process (a decision costs no subprocess)."""

    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise QlrfError(f"{VOUCH_KEY}={path}: cannot read it ({exc.strerror})") from None
        try:
            key = serialization.load_ssh_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise QlrfError(
                f"{VOUCH_KEY}={path}: not an unencrypted OpenSSH private key ({exc}); make one "
                "with ssh-keygen -t ed25519 -N '' -f qlrf-web"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise QlrfError(f"{VOUCH_KEY}={path}: the service's key must be ed25519")
        self._private = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        self._public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_line(self) -> str:
        """The key as a trust file's line takes it: `ssh-ed25519 AAAA...`."""
        encoded = base64.b64encode(sshsig.ed25519_blob(self._public)).decode()
        return f"ssh-ed25519 {encoded}"

    def proof(self, claim: claims.Claim, person: Person) -> claims.Proof:
        """The proof the run checks: the service's signature for `person` over `claim`."""
        nonce = secrets.token_urlsafe(24)
        not_after = iso(datetime.now(UTC) + VALID_FOR) or ""
        fields = {**claim, "nonce": nonce, "not_after": not_after}
        via = person.via
        text = claims.vouch_text(fields, person.principal, via)
        signature = sshsig.sign_ed25519(self._private, self._public, text, claims.VOUCH_NAMESPACE)
        return {
            "signature": signature,
            "nonce": nonce,
            "not_after": not_after,
            "principal": person.principal,
            "via": via,
        }
