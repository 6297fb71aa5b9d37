"""The vault's pieces that need no server: references, the worker's configuration file
and its errors, `secrets.NAME.FIELD` in templates, and how a fetched value resolves."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from runner import secretref
from runner.dsl.secrets_config import SecretsConfigError, load
from runner.engine.render import TemplateFailure, _render_secret_position
from runner.steps.own_files import own_files
from runner.steps.secrets import Resolver
from runner.vault import client as vault
from runner.vault.refs import KvRef, LeaseRef, parse

GOOD = """\
vault:
  address: https://vault.example.com:8200/
  auth: {method: approle, role_id_file: /etc/qlrf/role-id, secret_id_file: /etc/qlrf/secret-id}
secrets:
  db_password: vault:kv/data/prod/db#password
  pg_creds: vault-lease:database/creds/readonly
"""


def test_references_parse_into_kv_and_lease() -> None:
    assert parse("vault:kv/data/prod/db#password") == KvRef("kv", "prod/db", "password")
    assert str(parse("vault:kv/data/prod/db#password")) == "vault:kv/data/prod/db#password"
    assert parse("vault-lease:database/creds/readonly") == LeaseRef("database/creds/readonly")
    for bad in ("vault:kv/prod/db#password", "vault:kv/data/prod/db", "db", "vault-lease:"):
        assert parse(bad) is None, bad


def test_a_good_configuration_loads(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(GOOD)
    config = load(str(path))
    assert config is not None
    assert config.vault.address == "https://vault.example.com:8200"
    assert config.vault.auth.files() == ["/etc/qlrf/role-id", "/etc/qlrf/secret-id"]
    assert config.secrets["pg_creds"] == LeaseRef("database/creds/readonly")
    assert config.vault.kv_cache == 1.0  # a rotation or a stopped vault is met within 1 s
    assert load("") is None  # the variable unset: no vault


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            GOOD.replace("approle,", "kerberos,"),
            "3:18: error[bad-value] vault.auth.method: unknown",
        ),
        (GOOD.replace("secret_id_file", "secretid_file"), "did you mean 'secret_id_file'"),
        (GOOD.replace("kv/data/prod", "kv/prod"), "5:16: error[bad-value] secrets.db_password"),
        (GOOD.replace("address:", "adress:"), "2:3: error[unknown-key] vault.adress"),
        (GOOD.replace("  db_password", "  db-password"), "secrets"),
        ("vault: [\n", "yaml-syntax"),
        ("", "the file is empty; give its vault: and secrets: keys"),
    ],
)
def test_a_bad_configuration_names_file_line_and_key(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    with pytest.raises(SecretsConfigError) as raised:
        load(str(path))
    message = str(raised.value)
    assert "QLRF_SECRETS_CONFIG" in message and f"{path}:" in message
    assert said in message, message


def test_a_template_names_a_field_of_a_dynamic_secret() -> None:
    rendered = _render_secret_position(
        "{{ secrets.pg.username }}:{{ secrets.pg['password'] }}@{{ secrets.plain }}", {}
    )
    assert rendered == (
        f"{secretref.marker('pg', 'username')}:{secretref.marker('pg', 'password')}"
        f"@{secretref.marker('plain')}"
    )
    with pytest.raises(TemplateFailure, match="has no field"):
        _render_secret_position("{{ secrets.pg['not a field'] }}", {})


def test_a_reference_copies_and_pickles_as_plain_text() -> None:
    """The engine's dataclasses deep-copy a step's parameters: a reference rebuilt through
    its constructor would wrap itself in a second marker."""
    ref = secretref.SecretRef("db")
    for copied in (copy.deepcopy(ref), pickle.loads(pickle.dumps(ref)), copy.copy(ref)):
        assert copied == secretref.marker("db")
        assert type(copied) is str


def _resolver_with(fetched: dict[str, object]) -> Resolver:
    resolver = Resolver()
    resolver._fetched.update(fetched)  # type: ignore[arg-type]
    for value in fetched.values():
        resolver._remember(value)
    return resolver


def test_fields_of_a_fetched_secret_resolve_and_mask() -> None:
    resolver = _resolver_with({"pg": {"username": "v-app-x1", "password": "pw-9f8e7d6c"}})
    text = f"{secretref.marker('pg', 'username')}/{secretref.marker('pg', 'password')}"
    assert resolver.resolve(text) == "v-app-x1/pw-9f8e7d6c"
    assert resolver.mask("user v-app-x1 pw pw-9f8e7d6c") == "user *** pw ***"
    whole = json.loads(resolver.resolve(secretref.marker("pg")))
    assert whole == {"password": "pw-9f8e7d6c", "username": "v-app-x1"}
    with pytest.raises(ApplicationError, match="no field 'nope'") as raised:
        resolver.resolve(secretref.marker("pg", "nope"))
    assert raised.value.type == "SecretNotFound" and raised.value.non_retryable
    assert "pw-9f8e7d6c" not in str(raised.value)


def test_a_field_of_a_single_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLRF_SECRET_TOKEN", "tok-123456")
    with pytest.raises(ApplicationError, match="is one value") as raised:
        Resolver().resolve(secretref.marker("TOKEN", "user"))
    assert raised.value.type == "SecretNotFound"


def test_without_a_vault_a_name_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault.configure(None)
    monkeypatch.setenv("QLRF_SECRET_TOKEN", "tok-123456")
    assert asyncio.run(Resolver().fetch("TOKEN")) == "tok-123456"


def test_the_login_files_are_the_workers_own(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(GOOD)
    vault.configure(load(str(path)))
    try:
        own = own_files()
        assert "/etc/qlrf/role-id" in own and "/etc/qlrf/secret-id" in own
    finally:
        vault.configure(None)


def test_relative_files_are_beside_the_file_and_the_address_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(
        "vault:\n  auth: {method: token, token_file: token}\nsecrets:\n  a: vault:kv/data/a#b\n"
    )
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("BAO_ADDR", raising=False)
    with pytest.raises(SecretsConfigError, match=r"secrets.yaml:1:1: vault.address is not set"):
        load(str(path))
    monkeypatch.setenv("BAO_ADDR", "http://127.0.0.1:8200")
    config = load(str(path))
    assert config is not None and config.vault.address == "http://127.0.0.1:8200"
    assert config.vault.auth.token_file == str(tmp_path / "token")


def test_kv_reads_are_shared_by_steps_starting_together_and_kept_for_kv_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One function's unit test: the vault's answer is replaced by a counter."""
    from runner.vault.config import Auth, VaultSettings

    reads: list[str] = []
    clock = [100.0]

    def answer(self: vault.Vault, ref: KvRef) -> dict[str, object]:
        reads.append(ref.path)
        return {"password": f"v{len(reads)}"}

    monkeypatch.setattr(vault.Vault, "read_kv_secret", answer)
    monkeypatch.setattr("runner.vault.client._now", lambda: clock[0])
    session = vault.Vault(VaultSettings("http://vault", Auth("token", "t"), kv_cache=5.0))
    ref = KvRef("kv", "prod/db", "password")

    async def together() -> list[str]:
        return list(await asyncio.gather(*(session.kv(ref) for _ in range(20))))

    assert asyncio.run(together()) == ["v1"] * 20 and reads == ["prod/db"]
    clock[0] += 4.9
    assert asyncio.run(session.kv(ref)) == "v1"  # still within kv_cache
    clock[0] += 0.2
    assert asyncio.run(session.kv(ref)) == "v2"  # a rotated value is seen after it
    with pytest.raises(vault.VaultError, match="no key 'nope'"):
        asyncio.run(session.kv(KvRef("kv", "prod/db", "nope")))


def test_an_input_cannot_swap_one_field_of_a_secret_for_another() -> None:
    """A template that names `secrets.pg.username` holds that field only: a value rendered
    into it that refers to the password, or to the whole secret, fails the step."""
    for forged in (secretref.marker("pg", "password"), secretref.marker("pg")):
        with pytest.raises(TemplateFailure, match="does not name"):
            _render_secret_position(
                "{{ secrets.pg.username }} {{ inputs.note }}", {"inputs": {"note": forged}}
            )
    both = "{{ secrets.pg.username }} {{ secrets.pg }} {{ inputs.note }}"
    note = {"inputs": {"note": secretref.marker("pg")}}
    assert _render_secret_position(both, note).endswith(secretref.marker("pg"))
