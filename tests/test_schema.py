"""The published JSON Schemas: committed copies are fresh, and fit for editors."""

from __future__ import annotations

import json

import jsonschema

from runner.dsl.definitions import default_registry
from runner.dsl.publish import RUNBOOK_SCHEMA, STEP_TYPE_SCHEMA, schema_files, stale_files
from tests.helpers.cli import ROOT, qlrf

SCHEMAS = ROOT / "schemas"


def _load(name):
    return json.loads((SCHEMAS / name).read_text())


def test_committed_schemas_match_the_generator():
    """schemas/ is regenerated from the definitions; a stale copy fails here."""
    assert stale_files(default_registry(), SCHEMAS) == []


def test_schema_check_command_detects_a_stale_copy(tmp_path):
    """`qlrf-run schema --check` exits 1 on a stale copy and 0 once regenerated."""
    for name, text in schema_files(default_registry()).items():
        (tmp_path / name).write_text(text)
    assert qlrf("schema", "--check", "--out", str(tmp_path)).returncode == 0
    runbook = tmp_path / RUNBOOK_SCHEMA
    runbook.write_text(runbook.read_text().replace("Unique step id", "Step id"))
    stale = qlrf("schema", "--check", "--out", str(tmp_path))
    assert stale.returncode == 1
    assert RUNBOOK_SCHEMA in stale.stderr and "qlrf-run schema --out" in stale.stderr
    assert qlrf("schema", "--out", str(tmp_path)).returncode == 0
    assert qlrf("schema", "--check", "--out", str(tmp_path)).returncode == 0


def test_schemas_are_valid_draft_07():
    """Both schemas are themselves valid draft-07 schemas."""
    for name in (RUNBOOK_SCHEMA, STEP_TYPE_SCHEMA):
        schema = _load(name)
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        jsonschema.Draft7Validator.check_schema(schema)


def _walk(node, path="#"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def test_every_property_and_const_has_a_description():
    """Editors show a description for each key and each constant they offer."""
    schema = _load(RUNBOOK_SCHEMA)
    missing = []
    for path, node in _walk(schema):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and "$ref" not in prop and not prop.get("description"):
                missing.append(f"{path}/properties/{name}")
        if "const" in node and not node.get("description"):
            missing.append(path)
    assert missing == []


def test_objects_are_closed_except_free_form_maps():
    """additionalProperties is false wherever an object lists its properties."""
    schema = _load(RUNBOOK_SCHEMA)
    open_objects = [
        path
        for path, node in _walk(schema)
        if node.get("type") == "object"
        and node.get("properties")
        and node.get("additionalProperties") is not False
        # The root's `if` is a condition (kind: Test), not a shape of its own.
        and path != "#/if"
        # A step's selector: each if/then variant it applies is closed itself.
        and not all(
            rule.get("then", {}).get("additionalProperties") is False
            for rule in node.get("allOf", [{}])
        )
    ]
    assert open_objects == []


def test_each_step_type_is_a_titled_variant_selected_by_its_type():
    """`type` is an enum of every step type, each described; one if/then variant per type,
    with a title and its own `with` schema."""
    schema = _load(RUNBOOK_SCHEMA)
    step = schema["definitions"]["step"]
    chosen = step["properties"]["type"]
    assert chosen["enum"] == default_registry().names()
    assert len(chosen["enumDescriptions"]) == len(chosen["enum"])
    assert all(chosen["enumDescriptions"])
    assert "use one of" in chosen["errorMessage"]
    variants = [rule["then"] for rule in step["allOf"]]
    selectors = [rule["if"]["properties"]["type"]["const"] for rule in step["allOf"]]
    types = [v["properties"]["type"]["const"] for v in variants]
    assert types == selectors
    assert sorted(types) == default_registry().names()
    for variant in variants:
        assert variant["title"].startswith(variant["properties"]["type"]["const"] + ":")
        assert variant["properties"]["with"]["additionalProperties"] is False
    http = next(v for v in variants if v["properties"]["type"]["const"] == "http")
    assert "url" in http["properties"]["with"]["properties"]
    assert "command" not in http["properties"]["with"]["properties"]


def test_the_schema_alone_accepts_the_examples():
    """Tools that only know JSON Schema (check-jsonschema, editors) accept our examples."""
    from runner.dsl.loader import load_file

    validator = jsonschema.Draft7Validator(_load(RUNBOOK_SCHEMA))
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        errors = list(validator.iter_errors(load_file(path).data))
        assert errors == [], f"{path.name}: {errors[0].message if errors else ''}"
