"""Every template render has a budget: no huge value, no endless loop, no runaway work."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import template_budget
from runner.engine import render

CONTEXT: dict[str, Any] = {
    "inputs": {
        "n": 10**9,
        "s": "x" * 100_000,
        "small": 3,
        "hosts": [f"h{i}" for i in range(50)],
        "big": 3**4000,  # as large as JSON lets an input be: 1,909 digits
        "d": 7,
    },
    "steps": {},
    "run": {"id": "r"},
    "secrets": render.Secrets(),
}
# Generous bounds for a test on a busy machine; the budget keeps renders far below.
SECONDS = 5.0
PEAK_BYTES = 64 * 1024 * 1024

BOMBS = [
    "{{ 'a' * 10**9 }}",
    "{{ 'a' * inputs.n }}",
    "{{ [0] * inputs.n }}",
    "{{ 7 ** inputs.n }}",
    "{% for a in inputs.s %}{% for b in inputs.s %}x{% endfor %}{% endfor %}",
    "{{ 'x'|center(inputs.n) }}",
    "{{ 'x'.ljust(inputs.n) }}",
    "{{ 'a\tb'.expandtabs(inputs.n) }}",
    "{{ ('%0' ~ inputs.n ~ 'd') % 1 }}",
    "{{ '%*d' % (inputs.n, 1) }}",
    "{{ '{:>{}}'.format('x', inputs.n) }}",
    "{{ inputs.s|replace('x', 'yyy') }}",
    "{{ range(100000)|join(inputs.s) }}",
    "{{ ([[1]*2000]*2000)|map('join')|list|length }}",
    "{% set ns = namespace(x='') %}{% for i in range(10000) %}"
    "{% set ns.x = ns.x ~ inputs.s %}{% endfor %}",
    "{% for i in range(10000) %}{{ inputs.s }}{% endfor %}",
    "{{ [[1]*200000]*200000 }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{{ {'a': 1}|tojson(indent=inputs.n) }}",
    "{{ range(10)|sum(start=[]) }}",
    "{{ inputs.hosts|slice(inputs.n)|list }}",
    # Big integers: every operation is priced by size, and every filter's sizes checked
    # before it allocates (the adversarial review's cases).
    "{% for i in 'x' * 10000 %}{{ (inputs.big // inputs.d) % 7 }}{% endfor %}",
    "{% set a = 3 ** 1000000 %}{% for i in 'x' * 10000 %}{{ (a // 7) % 7 }}{% endfor %}",
    "{{ inputs.big * inputs.big }}",
    "{{ inputs.big % 7 }}",
    "{{ 1 | indent(inputs.n) }}",
    "{{ 12345 | indent(inputs.n, true) }}",
    "{{ [1] | batch(inputs.n, 'x') | list }}",
    "{{ 5 | round(-1000000) }}",
    "{{ inputs.big | abs }}",
    "{{ 'x' | truncate(inputs.n) | center(inputs.n) }}",
]


def _render(text: str) -> tuple[Any, float, int]:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        try:
            value: Any = render.render_string(text, CONTEXT)
        except render.TemplateFailure as exc:
            value = exc
        took = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return value, took, peak


@pytest.mark.parametrize("text", BOMBS)
def test_a_template_bomb_fails_at_once_without_taking_memory(text):
    """Each bomb is refused with TemplateError before it builds anything large."""
    value, took, peak = _render(text)
    assert isinstance(value, render.TemplateFailure), value
    assert took < SECONDS and peak < PEAK_BYTES, (took, peak)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ inputs.small * 2 }}", 6),
        ("{{ 'ab' * inputs.small }}", "ababab"),
        (
            "{% for h in inputs.hosts %}{{ h }},{% endfor %}",
            ",".join(f"h{i}" for i in range(50)) + ",",
        ),
        ("{{ inputs.hosts|map('upper')|join(' ') }}", " ".join(f"H{i}" for i in range(50))),
        ("{{ '%05d' % inputs.small }}", "00003"),
        ("{{ '{:>5}'.format(inputs.small) }}", "    3"),
        ("{{ 2 ** 64 }}", 2**64),
        ("{{ inputs.s|length }}", 100_000),
    ],
)
def test_ordinary_templates_render_as_before(text, expected):
    """The budget leaves the templates runbooks use alone."""
    assert render.render_string(text, CONTEXT) == expected


def test_the_budget_is_a_count_not_a_clock():
    """The same render uses the same budget every time: a replay decides as the run did."""
    text = "{% for h in inputs.hosts %}{{ h|upper }}{% endfor %}"
    used = []
    for _ in range(3):
        with template_budget.scope() as budget:
            compiled = render.environment().from_string(text)
            compiled.render(**CONTEXT)
        used.append((budget.ops, budget.loops))
    assert used[0] == used[1] == used[2]


def test_constant_folding_cannot_build_a_huge_value():
    """Compiling `'x'|center(10**9)` does not fold it into a gigabyte at compile time."""
    tracemalloc.start()
    try:
        env = render.environment()
        from runner import templates

        templates.compile_template(env, "{{ 'x'|center(10**9) }}{{ 'a' * 10**9 }}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES


PIECES = st.sampled_from(
    [
        "inputs.n",
        "inputs.small",
        "inputs.s",
        "inputs.hosts",
        "'ab'",
        "10",
        "10**6",
        "range(100000)",
        "[1, 2, 3]",
        "(inputs.s ~ inputs.s)",
    ]
)
OPERATORS = st.sampled_from(["*", "+", "~", "**", "%", "//"])
FILTERS = st.sampled_from(
    [
        "",
        "|list",
        "|join(inputs.s)",
        "|center(10**7)",
        "|replace('x', inputs.s)",
        "|map('string')|list",
        "|indent(10**6)",
        "|batch(10**7)|list",
        "|sum",
        "|reverse|list",
    ]
)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(PIECES) + draw(FILTERS)
    left = draw(expressions(depth + 1))
    right = draw(expressions(depth + 1))
    return f"({left} {draw(OPERATORS)} {right}){draw(FILTERS)}"


@st.composite
def template_texts(draw: st.DrawFn) -> str:
    body = "{{ " + draw(expressions()) + " }}"
    loops = draw(st.integers(min_value=0, max_value=2))
    for _ in range(loops):
        body = "{% for _x in " + draw(PIECES) + " %}" + body + "{% endfor %}"
    return body


@settings(
    max_examples=int(__import__("os").environ.get("QLRF_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=not __import__("os").environ.get("QLRF_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(template_texts())
def test_no_render_goes_past_the_budget(text):
    """Generated templates of repetitions, powers, joins, paddings and loops: each one
    renders or fails with TemplateError, within bounded time and memory."""
    _, took, peak = _render(text)
    assert took < SECONDS, (text, took)
    assert peak < PEAK_BYTES, (text, peak)
