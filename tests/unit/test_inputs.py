"""Run inputs: conversion from the command line and checking against declarations."""

from typing import Any

import pytest

from runner.errors import InputError
from runner.plan.inputs import convert, parse_assignments, resolve

DECLARED: dict[str, dict[str, Any]] = {
    "region": {"type": "string", "enum": ["us-west-2", "eu-west-1"], "default": "us-west-2"},
    "count": {"type": "integer", "required": True},
    "ratio": {"type": "number", "default": 0.5},
    "dry_run": {"type": "boolean", "default": False},
    "hosts": {"type": "array", "items": {"type": "string"}, "default": []},
    "extra": {"type": "object", "default": {}},
    "wait": {"type": "duration", "default": "10m"},
    "note": {"type": "string"},
}


def test_values_are_converted_by_declared_type():
    """Numbers, booleans and JSON for arrays and objects."""
    values = parse_assignments(
        ["count=3", "ratio=2.5", "dry_run=true", 'hosts=["a","b"]', 'extra={"k": 1}', "wait=1h30m"],
        DECLARED,
    )
    assert values == {
        "count": 3,
        "ratio": 2.5,
        "dry_run": True,
        "hosts": ["a", "b"],
        "extra": {"k": 1},
        "wait": "1h30m",
    }


def test_at_path_reads_the_value_from_a_file(tmp_path):
    """`@path` reads the value; text loses its final newline, JSON is parsed."""
    (tmp_path / "hosts.json").write_text('["x", "y"]\n')
    (tmp_path / "region.txt").write_text("eu-west-1\n")
    assert convert("hosts", DECLARED["hosts"], f"@{tmp_path / 'hosts.json'}") == ["x", "y"]
    assert convert("region", DECLARED["region"], f"@{tmp_path / 'region.txt'}") == "eu-west-1"
    with pytest.raises(InputError, match="cannot read"):
        convert("region", DECLARED["region"], f"@{tmp_path / 'missing.txt'}")


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("count=three", "not an integer"),
        ("hosts=[a", "not a list"),
        ("dry_run=maybe", "true"),
        ("regoin=x", "did you mean 'region'"),
        ("count", "NAME=VALUE"),
    ],
)
def test_bad_assignments_explain_themselves(pair, message):
    """Each mistake on the command line names the input and how to write it."""
    with pytest.raises(InputError, match=message):
        parse_assignments([pair], DECLARED)


def test_resolve_fills_defaults_and_reports_every_problem():
    """Defaults apply, optional inputs without default are None, and all problems come at once."""
    values = resolve(DECLARED, {"count": 2})
    assert values["region"] == "us-west-2" and values["note"] is None and values["count"] == 2
    with pytest.raises(InputError) as info:
        resolve(DECLARED, {"region": "mars", "hosts": ["a", 1], "bogus": 1})
    text = str(info.value)
    assert "'count' is required" in text and "mars" in text and "item 1" in text
    assert "'bogus' is not an input" in text
