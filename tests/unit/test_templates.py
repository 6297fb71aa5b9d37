"""Template analysis: which names a template uses, found without rendering it."""

import pytest

from runner import templates


@pytest.fixture
def env():
    return templates.new_environment()


def test_references_are_found_in_attribute_and_item_syntax(env):
    """Inputs, steps (both spellings), run fields, secrets and free names are told apart."""
    refs = templates.analyse(
        env,
        "{{ inputs.region }} {{ steps['check-app'].output.x }} {{ steps.a.status }} "
        "{{ run.id }} {{ secrets.TOKEN }} {{ host }}",
    )
    assert refs.inputs == ["region"]
    assert sorted(refs.steps) == [("a", "status"), ("check-app", "output")]
    assert refs.run == ["id"] and refs.secrets == ["TOKEN"] and refs.other == ["host"]


def test_names_bound_inside_the_template_are_not_free(env):
    """Loop targets and {% set %} names are the template's own."""
    refs = templates.analyse(
        env, "{% set n = 1 %}{% for h in inputs.hosts %}{{ h }}{{ n }}{{ loop.index }}{% endfor %}"
    )
    assert refs.other == [] and refs.inputs == ["hosts"]


def test_nondeterministic_helpers_are_removed(env):
    """random and lipsum would break replay, so the dialect does not have them."""
    assert "random" not in env.filters
    assert "lipsum" not in env.globals
    with pytest.raises(Exception, match="random"):
        env.from_string("{{ [1, 2] | random }}").render()


def test_single_expression_detection():
    """Exactly one {{ }} keeps its native type; anything else renders to text."""
    assert templates.single_expression("{{ inputs.hosts }}") == " inputs.hosts "
    assert templates.single_expression("  {{ x }}  ") == " x "
    assert templates.single_expression("a {{ x }}") is None
    assert templates.single_expression("{{ x }} {{ y }}") is None


def test_a_mappings_keys_come_before_its_methods(env):
    """`output.items` is a fan-out's list of items, not dict.items; a missing key is
    still the attribute, as in plain Jinja2."""
    output = {"items": [{"item": "h1"}], "succeeded": 1}
    assert env.compile_expression("output.items")(output=output) == [{"item": "h1"}]
    text = "{{ output.items | map(attribute='item') | join(',') }} {{ output.keys is callable }}"
    assert env.from_string(text).render(output=output) == "h1 True"
