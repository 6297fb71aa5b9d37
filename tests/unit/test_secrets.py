"""Secrets on the worker: resolved only where the workflow marked a position, masked in
every form they may be printed in."""

from __future__ import annotations

import asyncio
import base64
import binascii
import urllib.parse

import pytest

from runner.contract import StepRequest
from runner.secretref import marker
from runner.steps.secrets import MASK, Resolver

VALUE = "s3cr3t-T0ken/with+chars"


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("QLRF_SECRET_TOKEN", VALUE)
    monkeypatch.setenv("QLRF_SECRET_OTHER", "other-value-123")


def test_references_are_resolved_only_at_marked_positions():
    """A reference at a position the workflow did not mark stays text, whatever it says."""
    request = StepRequest(
        "r",
        "s",
        {
            "headers": {"Authorization": f"Bearer {marker('TOKEN')}"},
            "url": f"https://example.com/?leak={marker('OTHER')}",
            "command": ["echo", marker("OTHER")],
        },
        {"QLRF_ARG_0": marker("TOKEN"), "QLRF_ARG_1": marker("OTHER")},
        secret_params=[["headers", "Authorization"]],
        secret_env=["QLRF_ARG_0"],
    )
    resolver = Resolver()
    params, env = asyncio.run(resolver.request(request))
    assert params["headers"]["Authorization"] == f"Bearer {VALUE}"
    assert params["url"].endswith(marker("OTHER")) and params["command"][1] == marker("OTHER")
    assert env == {"QLRF_ARG_0": VALUE, "QLRF_ARG_1": marker("OTHER")}
    assert "other-value-123" not in resolver.values


def test_a_position_that_does_not_exist_resolves_nothing():
    """A marked position that is not in the parameters is ignored, not an error."""
    request = StepRequest("r", "s", {"a": [1]}, secret_params=[["a", 5], ["b", "c"]], secret_env=[])
    assert asyncio.run(Resolver().request(request)) == ({"a": [1]}, {})


def _forms(value: str) -> list[str]:
    raw = value.encode()
    padded = [b"", b"x", b"xy"]
    embedded = [base64.b64encode(p + raw + b"tail").decode() for p in padded]
    return [
        value,
        value[::-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        *embedded,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        binascii.hexlify(raw).decode(),
    ]


@pytest.mark.parametrize("form", range(len(_forms(VALUE))))
def test_the_value_is_masked_in_every_form(form):
    """The value, reversed, in base64 (alone or inside longer base64 at any alignment),
    URL-encoded and in hex: each is masked in outputs and errors."""
    resolver = Resolver()
    resolver.lookup("TOKEN")
    printed = f"before {_forms(VALUE)[form]} after"
    masked = resolver.mask({"stdout": printed, "list": [printed]})
    for text in (masked["stdout"], masked["list"][0]):
        assert MASK in text
        decoded = text
        assert VALUE not in decoded and VALUE[::-1] not in decoded
        assert base64.b64encode(VALUE.encode()).decode() not in decoded


def test_a_short_value_is_masked_as_itself_only():
    """Encodings of a two-letter value would mask ordinary text; the value is still masked."""
    resolver = Resolver()
    resolver.values.add("ab")
    assert resolver.mask("xab YWI= ba") == "x*** YWI= ba"
