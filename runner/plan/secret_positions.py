"""Where a step's `with` names a secret: the only positions the worker will resolve.

Found from the templates themselves, when the plan is compiled: a position holds
a template that mentions `secrets.NAME`. For a script parameter, (key, n) is its
n-th `{{ }}`, which reaches the script as $QLRF_ARG_n. Anything else that looks
like a secret reference (text from inputs, outputs, a modify) stays text.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2

from runner import templates

Position = tuple[str | int, ...]


@functools.cache
def _env() -> templates.BudgetedEnvironment:
    return templates.new_environment()


def _names_secret(text: str) -> bool:
    try:
        return bool(templates.analyse(_env(), text).secrets)
    except (jinja2.TemplateSyntaxError, RecursionError):
        return False  # `validate` reports it; a broken template resolves nothing


def secret_positions(params: Mapping[str, Any], script: str | None = None) -> tuple[Position, ...]:
    """The positions of `params` whose templates name a secret, in a stable order."""
    found: list[Position] = []
    for key, value in params.items():
        if key == script and isinstance(value, str):
            for n, (_, _, expr) in enumerate(templates.expressions(value)):
                if _names_secret("{{" + expr + "}}"):
                    found.append((key, n))
            continue
        found.extend(_walk(value, (key,)))
    return tuple(found)


def _walk(value: Any, where: Position) -> Iterator[Position]:
    if isinstance(value, str):
        if templates.is_template(value) and _names_secret(value):
            yield where
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*where, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*where, key))
