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


CERT_TYPES = {
    "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
    "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
}
USER_CERT = 1


@dataclass(frozen=True)
class Certificate:
    """An OpenSSH user certificate (PROTOCOL.certkeys), its CA's signature checked."""

    ca_key: bytes  # the CA's public key blob (what a cert-authority line holds)
    principals: tuple[str, ...]
    valid_after: int  # seconds since the epoch
    valid_before: int  # seconds since the epoch; 2**64-1: for ever
    key_id: str
    critical_options: bytes  # must be empty: qlrf honours no option


@dataclass(frozen=True)
class Signed:
    key_type: str
    key: bytes  # the public key's SSH wire blob (what allowed_signers holds, base64)
    namespace: str
    certificate: Certificate | None = None  # the key was certified by a CA


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
    certificate = None
    if key_type in CERT_TYPES:
        key_type, key, certificate = _certified(key)
    if key_type not in KEY_TYPES:
        raise BadSignature(f"keys of type {key_type} are not supported (use ed25519)")
    try:
        algorithm = hash_algorithm.decode("ascii")
        space = namespace.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("an SSH signature with a malformed namespace") from None
    return Signed(key_type, key, space, certificate), algorithm, signature


def _certified(blob: bytes) -> tuple[str, bytes, Certificate]:
    """The certified key (type and plain blob) and its certificate, once the CA's own
    signature over the certificate verifies."""
    cert = _Reader(blob)
    cert_type = cert.string().decode("ascii")
    plain_type = CERT_TYPES[cert_type]
    cert.string()  # nonce
    key = _string(plain_type.encode())
    if plain_type == "ssh-ed25519":
        key += _string(cert.string())
    elif plain_type == "ecdsa-sha2-nistp256":
        key += _string(cert.string()) + _string(cert.string())
    else:
        key += _string(cert.string()) + _string(cert.string())  # e, n as mpint strings
    cert.take(8)  # serial
    if cert.uint32() != USER_CERT:
        raise BadSignature("the certificate is a host certificate, not a user's")
    key_id = cert.string().decode("utf-8", "replace")
    listed = _Reader(cert.string())
    principals: list[str] = []
    while not listed.done():
        principals.append(listed.string().decode("utf-8", "replace"))
    (valid_after,) = struct.unpack(">Q", cert.take(8))
    (valid_before,) = struct.unpack(">Q", cert.take(8))
    options = cert.string()
    cert.string()  # extensions (permit-pty...): about sessions, not signatures
    cert.string()  # reserved
    ca_key = cert.string()
    signed_part = blob[: cert.at]
    ca_signature = cert.string()
    if not cert.done():
        raise BadSignature("a certificate with trailing bytes")
    ca_type = _Reader(ca_key).string().decode("ascii", "replace")
    if ca_type not in KEY_TYPES:
        raise BadSignature(f"a certificate signed by a {ca_type} key, which is not supported")
    _check(Signed(ca_type, ca_key, ""), ca_signature, signed_part)
    return (
        plain_type,
        key,
        Certificate(
            ca_key, tuple(principals), int(valid_after), int(valid_before), key_id, options
        ),
    )


def verify(armored: str, message: bytes, namespace: str) -> Signed:
    """The signer, when `armored` is a valid signature of `message` in `namespace`."""
    signed, algorithm, signature = parse(armored)
    if signed.namespace != namespace:
        raise BadSignature(
            f"the signature is for namespace {signed.namespace!r}, not {namespace!r}"
        )
    if algorithm not in ("sha512", "sha256"):
        raise BadSignature(f"hash algorithm {algorithm!r} is not supported")
    _check(signed, signature, signed_data(message, namespace, algorithm))
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


def signed_data(message: bytes, namespace: str, algorithm: str = "sha512") -> bytes:
    """What an SSHSIG signature covers (PROTOCOL.sshsig)."""
    digest = hashlib.new(algorithm, message).digest()
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(algorithm.encode())
        + _string(digest)
    )


def armor(public_blob: bytes, namespace: str, signature: bytes, algorithm: str = "sha512") -> str:
    """The armored SSHSIG of a signature made over signed_data(...)."""
    blob = (
        MAGIC
        + struct.pack(">I", 1)
        + _string(public_blob)
        + _string(namespace.encode())
        + _string(b"")
        + _string(algorithm.encode())
        + _string(signature)
    )
    text = base64.b64encode(blob).decode("ascii")
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def ed25519_blob(public: bytes) -> bytes:
    """An ed25519 public key (its raw 32 bytes) as SSH's wire blob."""
    return _string(b"ssh-ed25519") + _string(public)


def sign_ed25519(private: bytes, public: bytes, message: bytes, namespace: str) -> str:
    """An SSHSIG by an ed25519 key (its raw 32-byte halves), as `ssh-keygen -Y sign`
    makes it, in-process: the web service signs every action without a subprocess."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = Ed25519PrivateKey.from_private_bytes(private).sign(signed_data(message, namespace))
    signature = _string(b"ssh-ed25519") + _string(raw)
    return armor(ed25519_blob(public), namespace, signature)
