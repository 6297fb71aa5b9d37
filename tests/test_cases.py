"""Example runbooks as files: valid ones compile clean, invalid ones match golden diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import ROOT

CASES = ROOT / "tests" / "cases"
VALID = sorted((CASES / "valid").glob("*.yaml"))
GOLDEN = sorted((CASES / "invalid").glob("*.yaml")) + sorted((CASES / "warnings").glob("*.yaml"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_case_has_no_diagnostics_and_compiles(path, validator, in_root):
    """A valid case gives no error nor warning, and compiles to a plan with every step."""
    from runner.plan.compiler import compile_plan

    checked = validator.check_file(_rel(path))
    assert [d.text() for d in checked.diagnostics] == []
    plan = compile_plan(validator.registry, checked.doc.data, _rel(path), lambda p: "1:1")
    assert len(plan.nodes) == len(checked.doc.data["steps"])
    assert len(plan.plan_hash) == 64


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case_matches_golden_diagnostics(path, validator, in_root, update_goldens):
    """The diagnostics of a case are exactly those in its .expected file."""
    checked = validator.check_file(_rel(path))
    text = "\n".join(d.text() for d in checked.diagnostics) + "\n"
    expected = path.with_suffix(".expected")
    if update_goldens:
        expected.write_text(text, encoding="utf-8")
    assert expected.exists(), f"run pytest --update-goldens to create {expected.name}"
    assert text == expected.read_text(encoding="utf-8")
    if path.parent.name == "invalid":
        assert not checked.ok, "an invalid case must have at least one error"
    else:
        assert checked.ok and checked.diagnostics, "a warning case is valid but warns"


def test_at_least_thirty_invalid_cases():
    """The invalid corpus stays broad: at least 30 files."""
    assert len(list((CASES / "invalid").glob("*.yaml"))) >= 30


# Codes that no file can trigger on purpose; each is covered by the unit test named here.
UNIT_TESTED = {
    "internal-error": "tests/unit/test_validate.py",
    "unreadable": "tests/unit/test_loader.py",
    "encoding": "tests/unit/test_loader.py",
    "bad-number": "tests/unit/test_loader.py",
    "bad-tag": "tests/unit/test_loader.py",
    "bad-merge": "tests/unit/test_loader.py",
    "complex-key": "tests/unit/test_loader.py",
    "conflicting-keys": "tests/unit/test_validate.py",
    "duplicate-item": "tests/unit/test_validate.py",
    "out-of-range": "tests/unit/test_validate.py",
    "schema": "tests/unit/test_validate.py",
}


def _documented_codes() -> set[str]:
    import re

    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([a-z-]+)` \|", text, re.M))


def test_every_documented_code_has_a_case_and_every_case_code_is_documented():
    """docs/diagnostics.md and the golden files agree on the diagnostic codes."""
    import re

    documented = _documented_codes()
    in_goldens = set()
    for expected in CASES.rglob("*.expected"):
        in_goldens |= set(re.findall(r"(?:error|warning)\[([a-z-]+)\]", expected.read_text()))
    assert in_goldens - documented == set(), "codes missing from docs/diagnostics.md"
    assert documented - in_goldens - set(UNIT_TESTED) == set(), "documented codes without a case"
    for code, test_file in UNIT_TESTED.items():
        assert f'"{code}"' in (ROOT / test_file).read_text(), f"{code} not tested in {test_file}"
