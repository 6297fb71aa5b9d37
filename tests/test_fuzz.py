"""Random YAML-like documents never crash `validate`: every outcome is a diagnostic."""

from __future__ import annotations

import copy
import os
from typing import Any

import jsonschema
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.dsl.loader import load_file
from tests.helpers.cli import ROOT

SEED = load_file(ROOT / "tests" / "cases" / "valid" / "graph-and-failure.yaml").data
FANOUT = load_file(ROOT / "tests" / "cases" / "valid" / "fanout-waves.yaml").data

YAML_ALPHABET = st.sampled_from(
    [*list("abc:- \n\t{}[],&*!|>'\"#%@`?~0123456789."), "{{", "}}", "{%", "%}", "<<", "---"]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "{{ inputs.x }}",
            "{{ steps.a.output }}",
            "{{",
            "10m",
            "100%",
            "shell",
            "http",
            "approval",
            "group:sre",
            "{% for %}",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
# CI must be deterministic: the same examples on every run (derandomize), no example
# database. To explore further, raise the count and randomize by hand:
#   QLRF_FUZZ_EXAMPLES=5000 QLRF_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/test_fuzz.py
FUZZ = settings(
    max_examples=int(os.environ.get("QLRF_FUZZ_EXAMPLES", "300")),
    derandomize=not os.environ.get("QLRF_FUZZ_RANDOM"),
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _assert_no_crash(validator, text: str) -> None:
    checked = validator.check_text(text, "fuzz.yaml")
    crashes = [d.text() for d in checked.diagnostics if d.code == "internal-error"]
    assert crashes == []
    for d in checked.diagnostics:
        assert d.line >= 1 and d.column >= 1 and d.message
    if not checked.doc.diagnostics:  # it loaded: compare with plain JSON Schema validation
        _assert_same_verdict_as_jsonschema(validator, checked.doc)


_PLAIN: dict[str, Any] = {}


def _assert_same_verdict_as_jsonschema(validator, doc) -> None:
    """Dispatching steps by `type` must accept exactly what the published oneOf accepts."""
    plain = _PLAIN.get("v")
    if plain is None:
        plain = _PLAIN["v"] = jsonschema.Draft7Validator(validator.schema)
    ours = validator.schema_checker.check(doc)
    assert bool(ours) == (not plain.is_valid(doc.data)), [d.text() for d in ours]


@FUZZ
@given(st.lists(YAML_ALPHABET, max_size=200).map("".join))
def test_random_text_never_crashes(validator, text):
    """Arbitrary YAML-ish character soup yields diagnostics, never an exception."""
    _assert_no_crash(validator, text)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@st.composite
def mutated_runbooks(draw):
    doc = copy.deepcopy(draw(st.sampled_from([SEED, FANOUT])))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(values)
        else:
            parent.append(draw(values))
    return doc


@FUZZ
@given(mutated_runbooks())
def test_mutated_runbooks_never_crash(validator, doc):
    """A valid runbook with values replaced, deleted or added yields diagnostics only."""
    _assert_no_crash(validator, yaml.safe_dump(doc, sort_keys=False))
