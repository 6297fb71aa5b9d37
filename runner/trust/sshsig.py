"""Verifying SSH signatures (SSHSIG, as `ssh-keygen -Y sign` makes them), purely.

No I/O, no clock, no randomness: the workflow verifies decisions with this in its
Update validators, and a replay must reach the same answer. Keys: ssh-ed25519,
ecdsa-sha2-nistp256, and ssh-rsa signed with rsa-sha2-512 (or rsa-sha2-256).

The format (OpenSSH's PROTOCOL.sshsig): an armored blob of
    "SSHSIG" uint32(1) string(publickey) string(namespace) string(reserved)
    string(hash_algorithm) string(signature)
whose signature covers
    "SSHSIG" string(namespace) string(reserved) string(hash_algorithm) string(H(message)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAGIC = b"SSHSIG"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
MAX_ARMORED = 16 * 1024  # an RSA-4096 signature is under 2 KiB
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")


class BadSignature(Exception):
    """The signature does not verify, or is not one; the message says why."""


@dataclass(frozen=True)
class Signed:
    key_type: str
    key: bytes  # the public key's SSH wire blob (what allowed_signers holds, base64)
    namespace: str


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise BadSignature("the signature is truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def uint32(self) -> int:
        (value,) = struct.unpack(">I", self.take(4))
        return int(value)

    def string(self) -> bytes:
        return self.take(self.uint32())

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.at == len(self.data)


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def unarmor(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > MAX_ARMORED:
        raise BadSignature("not an SSH signature (too long, or not text)")
    body = text.strip()
    if not body.startswith(BEGIN) or not body.endswith(END):
        raise BadSignature(f"not an SSH signature: it must start with {BEGIN}")
    inner = "".join(body[len(BEGIN) : -len(END)].split())
    try:
        return base64.b64decode(inner, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("not an SSH signature: its body is not base64") from None


def parse(armored: str) -> tuple[Signed, str, bytes]:
    """The signer's key and namespace, the hash algorithm and the signature blob."""
    blob = _Reader(unarmor(armored))
    if blob.take(6) != MAGIC:
        raise BadSignature("not an SSH signature (no SSHSIG preamble)")
    if blob.uint32() != 1:
        raise BadSignature("an SSH signature of an unknown version")
    key = blob.string()
    namespace = blob.string()
    blob.string()  # reserved
    hash_algorithm = blob.string()
    signature = blob.string()
    if not blob.done():
        raise BadSignature("an SSH signature with trailing bytes")
    key_type = _Reader(key).string().decode("ascii", "replace")
    if key_type not in KEY_TYPES:
        raise BadSignature(f"keys of type {key_type} are not supported (use ed25519)")
    try:
        algorithm = hash_algorithm.decode("ascii")
        space = namespace.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("an SSH signature with a malformed namespace") from None
    return Signed(key_type, key, space), algorithm, signature


def verify(armored: str, message: bytes, namespace: str) -> Signed:
    """The signer, when `armored` is a valid signature of `message` in `namespace`."""
    signed, algorithm, signature = parse(armored)
    if signed.namespace != namespace:
        raise BadSignature(
            f"the signature is for namespace {signed.namespace!r}, not {namespace!r}"
        )
    if algorithm not in ("sha512", "sha256"):
        raise BadSignature(f"hash algorithm {algorithm!r} is not supported")
    digest = hashlib.new(algorithm, message).digest()
    data = (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(algorithm.encode())
        + _string(digest)
    )
    _check(signed, signature, data)
    return signed


def _check(signed: Signed, signature: bytes, data: bytes) -> None:
    key = _Reader(signed.key)
    key.string()
    sig = _Reader(signature)
    sig_type = sig.string().decode("ascii", "replace")
    raw = sig.string()
    try:
        if signed.key_type == "ssh-ed25519":
            if sig_type != "ssh-ed25519":
                raise BadSignature(f"a {sig_type} signature from an ed25519 key")
            Ed25519PublicKey.from_public_bytes(key.string()).verify(raw, data)
        elif signed.key_type == "ecdsa-sha2-nistp256":
            if key.string() != b"nistp256" or sig_type != "ecdsa-sha2-nistp256":
                raise BadSignature("an ecdsa signature that is not nistp256")
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key.string())
            parts = _Reader(raw)
            r, s = parts.mpint(), parts.mpint()
            point.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        else:
            chosen = {"rsa-sha2-512": hashes.SHA512(), "rsa-sha2-256": hashes.SHA256()}
            if sig_type not in chosen:
                raise BadSignature(f"RSA signatures must be rsa-sha2-512, not {sig_type}")
            e, n = key.mpint(), key.mpint()
            public = rsa.RSAPublicNumbers(e, n).public_key()
            if public.key_size < 2048:
                raise BadSignature("RSA keys under 2048 bits are refused")
            public.verify(raw, data, padding.PKCS1v15(), chosen[sig_type])
    except InvalidSignature:
        raise BadSignature("the signature does not match the signed text") from None
    except ValueError as exc:
        raise BadSignature(f"a malformed key or signature: {exc}") from None
