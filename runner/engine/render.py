"""Rendering templates inside the workflow: deterministic, and secrets stay references.

`{{ secrets.NAME }}` renders to a reference (runner.secretref), never the value;
the activity that receives it resolves it on the worker (runner/steps/secrets.py).
A string that is exactly one `{{ expr }}` keeps the expression's native type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jinja2

from runner import secretref, templates

_ENV: jinja2.Environment | None = None


class TemplateFailure(Exception):
    """A template failed at run time (an undefined name, a type error in an expression)."""


def environment() -> jinja2.Environment:
    # One environment per worker process: building one costs milliseconds, and its
    # template cache gives the same results on every replay.
    global _ENV
    if _ENV is None:
        _ENV = templates.new_environment()
    return _ENV


class Secrets(dict[str, str]):
    """`secrets.NAME` in a template gives a reference to NAME, never a value."""

    def __missing__(self, name: str) -> str:
        return secretref.marker(name)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template inside `value` (strings, lists, mappings)."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value


# Compiled templates by text. Compiling costs far more than rendering, and the same
# texts come back in every run of a runbook; the cache holds code, not values, so
# it cannot change what a replay computes.
_COMPILED: dict[str, tuple[bool, Any]] = {}
_COMPILED_LIMIT = 4096


def _compiled(text: str) -> tuple[bool, Any]:
    found = _COMPILED.get(text)
    if found is None:
        env = environment()
        expr = templates.single_expression(text)
        if expr is not None:
            found = (True, env.compile_expression(expr, undefined_to_none=False))
        else:
            found = (False, env.from_string(text))
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()
        _COMPILED[text] = found
    return found


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    if not templates.is_template(text):
        return text
    try:
        native, compiled = _compiled(text)
        if native:
            value = compiled(**context)
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            return value
        return compiled.render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateFailure(f"template {text!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailure(f"template {text!r}: {type(exc).__name__}: {exc}") from None


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "off")
    return bool(value)


def step_params(
    params: Mapping[str, Any], context: Mapping[str, Any], script: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A step's `with`, rendered for its activity, and the environment of its script.

    `script` names the `with` key that holds a bash script (the step type's
    capability), whose templates become environment variables instead of text.
    """
    if script is not None and isinstance(params.get(script), str):
        code, env = render_script(params[script], context)
        rendered = render({k: v for k, v in params.items() if k != script}, context)
        rendered[script] = code
        return rendered, env
    return render(dict(params), context), {}


def render_script(script: str, context: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Turn each `{{ expr }}` of a shell script into "${QLRF_ARG_n}" plus its value.

    The values travel as environment variables, so nothing a template renders can
    become shell code, whatever quotes or `$(...)` it holds.
    """
    env: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = f"QLRF_ARG_{len(env)}"
        value = render_string("{{" + match.group(1) + "}}", context)
        env[name] = value if isinstance(value, str) else _to_text(value)
        return "${" + name + "}"

    return templates.EXPRESSION.sub(replace, script), env


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)
