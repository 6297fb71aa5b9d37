"""Signing people's actions with their SSH key, as `ssh-keygen -Y sign -n qlrf` does.

`ssh-keygen` does the signing, so a key in ssh-agent, or on a hardware token, works
as a key file does. The key is QLRF_SIGNING_KEY (a private key, or a public key
whose private half is in the agent), else ~/.ssh/id_ed25519.

A client signs when the run (or, for `apply`, this machine) is in signed mode:
QLRF_SIGNING_KEY or QLRF_ALLOWED_SIGNERS set here, or a run whose state says
`identity.mode: signed`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.errors import QlrfError, UsageError
from runner.times import iso
from runner.trust.claims import NAMESPACE, Claim, Proof, canonical

SIGNING_KEY = "QLRF_SIGNING_KEY"
# A signature is good for this long: enough for a slow round trip, short for a replay.
VALID_FOR = timedelta(minutes=5)
SIGN_TIMEOUT_SECONDS = 60  # a hardware key may wait for a touch


def wanted_here() -> bool:
    """Whether this machine is set up for signed mode."""
    return bool(os.environ.get(SIGNING_KEY) or os.environ.get("QLRF_ALLOWED_SIGNERS"))


def key_path() -> Path:
    """The signing key; QlrfError saying how to set one when there is none."""
    given = os.environ.get(SIGNING_KEY, "").strip()
    path = Path(given).expanduser() if given else Path.home() / ".ssh" / "id_ed25519"
    if not path.is_file():
        where = f"{SIGNING_KEY}={given}" if given else f"{path} (the default)"
        raise QlrfError(
            f"signed mode needs your SSH key to sign, and {where} is not a key file: set "
            f"{SIGNING_KEY} to your private key, or to your public key with the private "
            "half in ssh-agent (the key the worker's QLRF_ALLOWED_SIGNERS lists)"
        )
    if shutil.which("ssh-keygen") is None:
        raise QlrfError("signing needs ssh-keygen (install openssh-client)")
    return path


def refuse_as(as_user: str | None) -> None:
    if as_user:
        raise UsageError(
            "--as is refused in signed mode: who acts is the principal of the key that "
            f"signs ({SIGNING_KEY})"
        )


def with_certificate(path: Path) -> Path:
    """The key's certificate when one lies beside it (`id_ed25519-cert.pub`, as ssh
    finds it), so that a key certified by an SSH CA signs as its certificate's
    principal; the key itself otherwise."""
    if path.name.endswith("-cert.pub"):
        return path
    cert = path.with_name(path.name.removesuffix(".pub") + "-cert.pub")
    return cert if cert.is_file() else path


def sign(claim: Claim, *, key: Path | None = None) -> Proof:
    """The proof of `claim` ({signature, nonce, not_after}) to send with the request."""
    path = with_certificate(key or key_path())
    nonce = secrets.token_urlsafe(24)
    not_after = iso(datetime.now(UTC) + VALID_FOR) or ""
    text = canonical({**claim, "nonce": nonce, "not_after": not_after})
    try:
        done = subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(path), "-n", NAMESPACE],
            input=text,
            capture_output=True,
            timeout=SIGN_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise QlrfError(f"ssh-keygen did not sign within {SIGN_TIMEOUT_SECONDS}s") from None
    signature = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in signature:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise QlrfError(
            f"ssh-keygen could not sign with {path}: "
            f"{reason[-1] if reason else 'no signature'}; check {SIGNING_KEY} (a public key "
            "needs its private half in ssh-agent)"
        )
    return {"signature": signature, "nonce": nonce, "not_after": not_after}
