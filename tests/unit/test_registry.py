"""The step-type registry: built-ins, duplicates, unknown names, definition quality."""

from pathlib import Path

import pytest

from runner.catalog.registry import Registry
from runner.dsl.definitions import builtin_paths, default_registry, load_definition
from runner.errors import DefinitionError, DuplicateStepType, UnknownStepType

BUILTINS = {
    "shell",
    "http",
    "sleep",
    "assert",
    "approval",
    "notify",
    "sql",
    "runbook",
    "evidence",
    "ssh",
}


def test_every_builtin_type_of_the_design_is_registered():
    """The ten built-in types load from definitions/steps."""
    assert set(default_registry().names()) == BUILTINS


def test_registering_a_type_twice_fails_at_start_up():
    """A duplicate type names both definition files."""
    shell = default_registry().get("shell")
    with pytest.raises(DuplicateStepType, match="defined twice"):
        Registry([shell, shell])


def test_unknown_type_lists_known_ones_and_suggests():
    """An unknown type answers with a did-you-mean and the full list."""
    with pytest.raises(UnknownStepType) as info:
        default_registry().get("htp")
    assert info.value.suggestion == "http"
    assert "known types: approval, assert" in str(info.value)


def test_every_param_and_output_property_has_a_description():
    """Editors show these descriptions, so none may be missing."""

    def walk(schema, where):
        for name, prop in (schema.get("properties") or {}).items():
            assert prop.get("description"), f"{where}.{name} has no description"
            walk(prop, f"{where}.{name}")

    for step_type in default_registry():
        walk(step_type.params, f"{step_type.type}.params")
        walk(step_type.output, f"{step_type.type}.output")
        assert step_type.runs_in != "activity" or (step_type.retry and step_type.timeout)


def test_a_broken_definition_is_refused_with_its_position(tmp_path: Path):
    """A definition that breaks the step-type schema fails loading, naming file and line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "type: bad\ndescription: x\nruns_in: activity\nerrors: []\n"
        "params: {type: object, properties: {a: {type: string}}}\noutput: {}\n"
    )
    with pytest.raises(DefinitionError) as info:
        load_definition(bad)
    text = str(info.value)
    assert f"{bad}:5:" in text and "description" in text
    assert "activity" in text  # an activity type needs activity, retry and timeout


def test_builtin_definitions_ship_from_one_folder():
    """The definitions are read from definitions/steps (package data in a wheel)."""
    paths = builtin_paths()
    assert {p.stem for p in paths} == BUILTINS
    assert all(p.parent.name == "steps" for p in paths)


def test_plugins_add_step_types_through_entry_points(tmp_path, monkeypatch):
    """An entry point in qlrf_run.steps names a definition file; its type joins the registry."""
    from runner.dsl import definitions

    source = (Path(definitions.builtin_paths()[0]).parent / "notify.yaml").read_text()
    plugin = tmp_path / "pager.yaml"
    plugin.write_text(
        source.replace("type: notify", "type: pager").replace("activity: notify", "activity: pager")
    )

    class EntryPoint:
        def load(self):
            return lambda: plugin  # a callable returning the path is allowed

    monkeypatch.setattr(
        definitions.metadata,  # type: ignore[attr-defined]
        "entry_points",
        lambda group: [EntryPoint()] if group == "qlrf_run.steps" else [],
    )
    definitions.default_registry.cache_clear()
    try:
        registry = definitions.default_registry()
        assert registry.get("pager").activity == "pager"
        assert len(registry) == len(BUILTINS) + 1
    finally:
        definitions.default_registry.cache_clear()


def test_every_activity_is_named_once_in_the_contract():
    """The definitions, the decorators and the worker's table name each step activity
    by the contract's constant: one spelling for all three."""
    from runner.contract import STEP_ACTIVITIES
    from runner.steps.activities import BUILTIN

    assert set(BUILTIN) == set(STEP_ACTIVITIES)
    for name, function in BUILTIN.items():
        assert function.__temporal_activity_definition.name == name  # type: ignore[attr-defined]
    named = {t.activity or t.type for t in default_registry() if t.runs_in == "activity"}
    assert named == set(STEP_ACTIVITIES)
