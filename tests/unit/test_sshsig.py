"""SSH signatures made by the real ssh-keygen (and ssh-agent), checked by the pure
verifier the workflow uses; and the trust file's parsing."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.times import iso
from runner.trust import claims, signers
from runner.trust.sshsig import BadSignature, verify

MESSAGE = b'{"action":"approve","gate":"review"}'


def keygen(folder: Path, name: str, kind: str, bits: str | None = None) -> Path:
    path = folder / name
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)]
    if bits:
        args += ["-b", bits]
    subprocess.run(args, check=True)
    return path


def sign(key: Path, message: bytes, namespace: str = "qlrf", env: dict | None = None) -> str:
    done = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", namespace],
        input=message,
        capture_output=True,
        check=True,
        env=env,
    )
    return done.stdout.decode()


def trust_line(principal: str, key: Path, namespaces: str = "qlrf") -> str:
    kind, blob = (key.with_suffix(".pub") if key.suffix != ".pub" else key).read_text().split()[:2]
    return f'{principal} namespaces="{namespaces}" {kind} {blob}'


@pytest.mark.parametrize(
    ("kind", "bits"), [("ed25519", None), ("ecdsa", "256"), ("rsa", "3072")], ids=str
)
def test_each_key_type_verifies_and_a_changed_text_does_not(tmp_path, kind, bits):
    key = keygen(tmp_path, f"k-{kind}", kind, bits)
    signature = sign(Path(str(key)), MESSAGE)
    signed = verify(signature, MESSAGE, "qlrf")
    listed = signers.parse(trust_line("alice@example.com", Path(str(key) + ".pub")))
    assert signers.principals_of(listed, signed.key, "qlrf") == ["alice@example.com"]
    with pytest.raises(BadSignature, match="does not match"):
        verify(signature, MESSAGE.replace(b"approve", b"reject"), "qlrf")
    with pytest.raises(BadSignature, match="namespace"):
        verify(signature, MESSAGE, "qlrf-seal")


def test_a_key_held_by_ssh_agent_signs(tmp_path):
    key = keygen(tmp_path, "agent-key", "ed25519")
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True)
    env = dict(os.environ)
    for part in agent.stdout.replace("\n", ";").split(";"):
        if "=" in part and not part.strip().startswith("export"):
            name, value = part.strip().split("=", 1)
            env[name] = value
    try:
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
        key.unlink()  # only the agent has the private half now
        signature = sign(Path(str(key) + ".pub"), MESSAGE, env=env)
        assert verify(signature, MESSAGE, "qlrf").key_type == "ssh-ed25519"
    finally:
        subprocess.run(["ssh-agent", "-k"], env=env, capture_output=True, check=False)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a signature",
        "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----\n" + "A" * 20000 + "\n-----END SSH SIGNATURE-----",
    ],
)
def test_malformed_signatures_are_refused_not_crashed(text):
    with pytest.raises(BadSignature):
        verify(text, MESSAGE, "qlrf")


def test_the_trust_file_is_parsed_strictly(tmp_path):
    key = keygen(tmp_path, "k", "ed25519")
    line = trust_line("alice@example.com,al*", Path(str(key) + ".pub"), "qlrf,git")
    text = f"# team\n\n{line}\n* cert-authority ssh-ed25519 AAAA\n"
    found = signers.parse(text)
    # The cert-authority line trusts certificates its CA signs, never its own key.
    assert [s.authority for s in found] == [False, True]
    assert found[0].namespaces == ("qlrf", "git")
    assert signers.principals_of(found, found[1].key, "qlrf") == []
    # A pattern is not a person; a namespace not listed is not signed for.
    assert signers.principals_of(found, found[0].key, "qlrf") == ["alice@example.com"]
    assert signers.principals_of(found, found[0].key, "qlrf-seal") == []
    with pytest.raises(signers.TrustFileError, match="line 1"):
        signers.parse("alice ssh-dss AAAA")
    with pytest.raises(signers.TrustFileError, match="line 2"):
        signers.parse(f"{line}\nbob ssh-ed25519 not-base64!")


def test_claims_bind_time_nonce_and_signer(tmp_path):
    alice = keygen(tmp_path, "alice", "ed25519")
    carol = keygen(tmp_path, "carol", "ed25519")
    trusted = signers.parse(trust_line("alice@example.com", Path(str(alice) + ".pub")))
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    expected = claims.claim(action="approve", run_id="r", gate="review", round=0)

    def proof(key: Path, not_after: datetime, nonce: str = "n" * 24) -> dict:
        text = claims.canonical({**expected, "nonce": nonce, "not_after": iso(not_after)})
        return {"signature": sign(key, text), "nonce": nonce, "not_after": iso(not_after)}

    good = proof(alice, now + timedelta(minutes=5))
    assert claims.check(good, expected, trusted, now) == "alice@example.com"
    cases = [
        (None, "no signature"),
        ({**good, "nonce": "short"}, "nonce"),
        (proof(alice, now - timedelta(seconds=1)), "expired"),
        (proof(alice, now + timedelta(minutes=11)), "10 minutes ahead"),
        (proof(carol, now + timedelta(minutes=5)), "not in the worker's trust file"),
        ({**good, "not_after": "tomorrow"}, "not a time"),
    ]
    for bad, reason in cases:
        with pytest.raises(claims.Unauthenticated, match=reason):
            claims.check(bad, expected, trusted, now)
    with pytest.raises(claims.Unauthenticated, match="used already"):
        claims.check(good, expected, trusted, now, {"n" * 24})
    other = claims.claim(action="approve", run_id="r", gate="review", round=1)
    with pytest.raises(claims.Unauthenticated, match="does not verify"):
        claims.check(good, other, trusted, now)
    with pytest.raises(claims.Unauthenticated, match="belongs to"):
        claims.check(good, expected, trusted, now, claimed_by="bob@example.com")
