"""Every runbook that ships (examples/, definitions/runbooks/) and every definition validates."""

from __future__ import annotations

import pytest

from tests.helpers.cli import ROOT

SHIPPED = sorted((ROOT / "examples").glob("*.yaml")) + sorted(
    (ROOT / "definitions" / "runbooks").glob("*.yaml")
)


def test_there_are_examples():
    """The examples folder is not empty (a newcomer starts there)."""
    assert len(list((ROOT / "examples").glob("*.yaml"))) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_runbook_is_clean(path, validator):
    """No error and no warning: shipped runbooks set the example."""
    checked = validator.check_file(path)
    assert [d.text() for d in checked.diagnostics] == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_runbook_has_the_schema_modeline(path):
    """Each shipped runbook tells editors where its schema is, by a path that exists."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("=", 1)[1]).resolve()
    assert target == (ROOT / "schemas" / "runbook.schema.json").resolve()


def test_step_type_definitions_validate_against_their_schema():
    """definitions/steps/*.yaml pass schemas/step-type.schema.json."""
    import json

    import jsonschema

    from runner.dsl.loader import load_file

    schema = json.loads((ROOT / "schemas" / "step-type.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    for path in sorted((ROOT / "definitions" / "steps").glob("*.yaml")):
        doc = load_file(path)
        assert doc.diagnostics == []
        assert list(validator.iter_errors(doc.data)) == [], path.name
