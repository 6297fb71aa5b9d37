"""The approvals service's pure parts: where sign-in may return to, the rate limit, the
configuration's refusals, and the run's check of a service's vouch and of SSH
certificate-authority lines (real keys from ssh-keygen, the check itself pure)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.errors import QlrfError
from runner.trust import claims, signers
from runner.web import settings
from runner.web.service import Limiter, safe_next
from runner.web.vouch import Person, Voucher


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/runs/x", "/runs/x"),
        ("/", "/"),
        ("//evil.example.com/x", "/"),
        ("https://evil.example.com", "/"),
        ("/\\evil.example.com", "/"),
        ("/runs\r\nSet-Cookie: x", "/"),
        (None, "/"),
        ("", "/"),
    ],
)
def test_after_sign_in_only_a_path_of_this_service(given, kept):
    assert safe_next(given) == kept


def test_the_rate_limit_counts_each_person_apart():
    limit = Limiter(3)
    assert [limit.allow("bob") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("erin")


def test_settings_refuse_an_open_bind_without_an_issuer_and_half_an_issuer(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("QLRF_WEB_"):
            monkeypatch.delenv(name)
    with pytest.raises(QlrfError, match="QLRF_WEB_OIDC_ISSUER"):
        settings.load("0.0.0.0", 8089, None)
    assert settings.load("127.0.0.1", 8089, None).local
    monkeypatch.setenv("QLRF_WEB_OIDC_ISSUER", "https://idp.example.com")
    with pytest.raises(QlrfError, match="QLRF_WEB_OIDC_CLIENT_ID"):
        settings.load("127.0.0.1", 8089, None)
    monkeypatch.setenv("QLRF_WEB_OIDC_CLIENT_ID", "qlrf")
    with pytest.raises(QlrfError, match="QLRF_WEB_VOUCH_KEY"):
        settings.load("127.0.0.1", 8089, None)
    monkeypatch.setenv("QLRF_WEB_VOUCH_KEY", "/nowhere")
    with pytest.raises(QlrfError, match="QLRF_WEB_SESSION_KEY"):
        settings.load("127.0.0.1", 8089, None)
    monkeypatch.setenv("QLRF_WEB_SESSION_KEY", "k" * 32)
    with pytest.raises(QlrfError, match="must be https"):
        settings.load("0.0.0.0", 8089, "http://qlrf.example.com")
    assert settings.load("0.0.0.0", 8089, "https://qlrf.example.com").issuer


def _key(folder: Path, name: str) -> Path:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def _pub(key: Path) -> str:
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
EXPECTED = claims.decision_claim(
    {"gate": "g", "decision": "approve"},
    run_id="r",
    temporal_run_id="t",
    round_=0,
    plan_hash="p",
    inputs_hash_now="i",
)


def _vouched(key: Path, principal: str) -> dict:
    proof = dict(Voucher(key).proof(EXPECTED, Person(principal, True, "https://idp", "s", 1)))
    # Voucher signs for now; the check below runs at NOW, so take the window from there.
    return proof


def test_a_vouch_is_checked_against_its_lines_patterns_and_namespace(tmp_path):
    service, person = _key(tmp_path, "service"), _key(tmp_path, "person")
    trust = signers.parse(
        f'*@example.com,!mallory@example.com namespaces="qlrf-vouch" {_pub(service)} web\n'
        f"bob@example.com {_pub(person)}\n"
    )
    now = datetime.now(UTC)
    proof = _vouched(service, "bob@example.com")
    who = claims.actor(proof, EXPECTED, trust, now)
    assert who.principal == "bob@example.com" and who.via and who.via["service"] == "web"
    with pytest.raises(claims.Unauthenticated, match="may not vouch for 'mallory"):
        claims.actor(_vouched(service, "mallory@example.com"), EXPECTED, trust, now)
    with pytest.raises(claims.Unauthenticated, match=r"may not vouch for 'eve@other\.org'"):
        claims.actor(_vouched(service, "eve@other.org"), EXPECTED, trust, now)
    # A key on a line for any namespace vouches for no one: only qlrf-vouch lines do.
    with pytest.raises(claims.Unauthenticated, match='namespaces="qlrf-vouch"'):
        claims.actor(_vouched(person, "bob@example.com"), EXPECTED, trust, now)
    # The principal is signed: changing it breaks the signature.
    forged = {**proof, "principal": "erin@example.com"}
    with pytest.raises(claims.Unauthenticated, match="does not verify"):
        claims.actor(forged, EXPECTED, trust, now)
    other = {**EXPECTED, "run_id": "another-run"}
    with pytest.raises(claims.Unauthenticated, match="does not verify"):
        claims.actor(proof, other, trust, now)


def test_cert_authority_lines_read_their_window_and_bad_times_name_the_line(tmp_path):
    ca = _key(tmp_path, "ca")
    text = f'*@example.com cert-authority,valid-before="20261231Z" {_pub(ca)}\n'
    (line,) = signers.parse(text)
    assert line.authority and line.valid_before == datetime(2026, 12, 31, tzinfo=UTC)
    with pytest.raises(signers.TrustFileError, match="line 1: valid-after='soon'"):
        signers.parse(f'* cert-authority,valid-after="soon" {_pub(ca)}\n')
    # A CA's key is no person's key.
    assert signers.principals_of([line], line.key, "qlrf") == []


def test_a_certificate_is_its_principal_only_within_both_windows(tmp_path):
    from runner.trust.sshsig import verify

    ca, key = _key(tmp_path, "ca"), _key(tmp_path, "key")
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(ca),
            "-I",
            "bob-cert",
            "-n",
            "bob@example.com",
            "-V",
            "20261201:20261215",
            f"{key}.pub",
        ],
        check=True,
    )
    message = tmp_path / "m"
    message.write_bytes(b"hello")
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", f"{key}-cert.pub", "-n", "qlrf", str(message)],
        check=True,
    )
    signed = verify((tmp_path / "m.sig").read_text(), b"hello", "qlrf")
    assert signed.certificate is not None and signed.certificate.key_id == "bob-cert"
    lines = signers.parse(f"*@example.com cert-authority {_pub(ca)}\n")
    assert signers.certified(lines, signed.certificate, "qlrf", NOW)[0] == ["bob@example.com"]
    late = NOW + timedelta(days=30)
    assert "outside its validity" in signers.certified(lines, signed.certificate, "qlrf", late)[1]
    closed = signers.parse(f'*@example.com cert-authority,valid-before="20261206" {_pub(ca)}\n')
    assert signers.certified(closed, signed.certificate, "qlrf", NOW)[0] == []
    narrow = signers.parse(f"*@corp.example cert-authority {_pub(ca)}\n")
    assert signers.certified(narrow, signed.certificate, "qlrf", NOW)[0] == []


def test_a_token_names_its_person_by_a_verified_claim_only(monkeypatch):
    import httpx

    from runner.web.tokens import Provider, Unauthorized

    for name in list(__import__("os").environ):
        if name.startswith("QLRF_WEB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QLRF_WEB_OIDC_ISSUER", "https://idp.example.com")
    monkeypatch.setenv("QLRF_WEB_OIDC_CLIENT_ID", "qlrf")
    monkeypatch.setenv("QLRF_WEB_VOUCH_KEY", "/k")
    monkeypatch.setenv("QLRF_WEB_SESSION_KEY", "k" * 32)
    found = Provider(settings.load("127.0.0.1", 8089, None), httpx.AsyncClient())
    assert found.principal_of({"email": "bob@example.com"}) == "bob@example.com"
    assert found.principal_of({"email": "bob@example.com", "email_verified": True})
    for claims_given in (
        {"email": "bob@example.com", "email_verified": False},
        {"sub": "bob"},
        {"email": "bob@example.com\nroot"},
    ):
        with pytest.raises(Unauthorized):
            found.principal_of(claims_given)
