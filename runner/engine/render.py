"""Rendering templates inside the workflow: deterministic, budgeted, secrets as references.

- `{{ secrets.NAME }}` renders to a reference (runner.secretref), never the value.
  The plan records which positions of a step's `with` name a secret (Node.secrets);
  only those positions are handed to the activity as secret positions, and only
  there does the worker resolve references. A value rendered at such a position
  may hold references only to secrets that its own template asked for, so text
  from inputs, outputs or a modify can never make one.
- Every render runs under a budget (runner/template_budget.py): over it, the step
  fails at once with TemplateError instead of stalling the workflow task.
- A string that is exactly one `{{ expr }}` keeps the expression's native type.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from runner import secretref, template_budget, templates
from runner.contract import PAYLOAD_LIMIT, BatchItem, payload_size

_ENV: templates.BudgetedEnvironment | None = None

# A position inside a step's `with`: keys and list indexes. For the type's script
# parameter, (script, n) names the script's n-th `{{ }}`, passed as $QLRF_ARG_n.
Position = tuple[str | int, ...]


class TemplateFailure(Exception):
    """A template failed at run time: an undefined name, a type error, its budget."""


def environment() -> templates.BudgetedEnvironment:
    # One environment per worker process: building one costs milliseconds, and its
    # template cache gives the same results on every replay.
    global _ENV
    if _ENV is None:
        _ENV = templates.new_environment()
    return _ENV


class Secrets(dict[str, str]):
    """`secrets.NAME` in a template gives a reference to NAME, and notes that it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: Counter[str] = Counter()

    def __missing__(self, name: str) -> str:
        self.asked[name] += 1
        return secretref.SecretRef(name, self.asked)


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
            found = (True, templates.compile_expression(env, expr))
        else:
            found = (False, templates.compile_template(env, text))
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()
        _COMPILED[text] = found
    return found


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    if not templates.is_template(text):
        return text
    try:
        with template_budget.scope():
            native, compiled = _compiled(text)
            if native:
                value = compiled(**context)
                if isinstance(value, jinja2.Undefined):
                    value._fail_with_undefined_error()
                template_budget.bounded_size(value)
                return value
            return compiled.render(**context)
    except template_budget.BudgetExceeded as exc:
        raise TemplateFailure(f"template {_short(text)}: over its budget: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateFailure(f"template {_short(text)}: {exc}") from None
    except Exception as exc:
        # A type error, a recursion too deep, a value too large to convert: anything
        # raised here would otherwise fail the workflow task and hang the run.
        raise TemplateFailure(f"template {_short(text)}: {type(exc).__name__}: {exc}") from None


def _short(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "...")


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "off")
    return bool(value)


@dataclass
class Rendered:
    """A step's `with`, rendered for its activity."""

    params: dict[str, Any]
    script_env: dict[str, str] = field(default_factory=dict)  # $QLRF_ARG_n of its script
    secret_params: list[list[str | int]] = field(default_factory=list)
    secret_env: list[str] = field(default_factory=list)


def step_params(
    params: Mapping[str, Any],
    context: Mapping[str, Any],
    script: str | None = None,
    secrets: Sequence[Position] = (),
) -> Rendered:
    """A step's `with`, rendered for its activity, with its script's environment.

    `script` names the `with` key that holds a bash script (the step type's
    capability), whose templates become environment variables instead of text.
    `secrets` are the positions whose templates name a secret.
    """
    wanted = {tuple(p) for p in secrets}
    out = Rendered({})
    for key, value in params.items():
        if key == script and isinstance(value, str):
            code, env, secret_env = render_script(
                value,
                context,
                {p[1] for p in wanted if len(p) == 2 and p[0] == key and isinstance(p[1], int)},
            )
            out.params[key] = code
            out.script_env, out.secret_env = env, secret_env
            continue
        out.params[key] = _render_at(value, context, (key,), wanted, out.secret_params)
    return out


def fanout_item(
    index: int,
    key: str,
    params: Mapping[str, Any],
    context: Mapping[str, Any],
    script: str | None,
    secrets: Sequence[Position],
) -> tuple[BatchItem, int]:
    """One fan-out item's request (its `with` rendered, as step_params renders it), and
    its size in a payload."""
    rendered = step_params(params, context, script, secrets)
    size = payload_size(rendered.params) + payload_size(rendered.script_env)
    item = BatchItem(
        index,
        key,
        rendered.params,
        rendered.script_env,
        rendered.secret_params,
        rendered.secret_env,
    )
    return item, size


def item_too_large(key: str, size: int) -> str:
    return f"the parameters of item {key!r} are {size} bytes, over the {PAYLOAD_LIMIT}-byte limit"


def _render_at(
    value: Any,
    context: Mapping[str, Any],
    where: Position,
    wanted: set[Position],
    found: list[list[str | int]],
) -> Any:
    if where in wanted:
        found.append(list(where))
        return _render_secret_position(value, context)
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, list):
        return [_render_at(v, context, (*where, i), wanted, found) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _render_at(v, context, (*where, k), wanted, found) for k, v in value.items()}
    return value


def _render_secret_position(value: Any, context: Mapping[str, Any]) -> Any:
    """Render a template that names a secret, and refuse references it did not make."""
    asked = Secrets()
    rendered = render(value, {**context, "secrets": asked})
    # `+` keeps the positive counts: `secrets.pg.username` asked for that field only.
    made = {secretref.key(match) for match in secretref.references(rendered)}
    forged = sorted(made - set(+asked.asked))
    if forged:
        raise TemplateFailure(
            f"a value rendered into this template holds a reference to secret "
            f"{', '.join(forged)}, which the template itself does not name; values from "
            "inputs, outputs and modifications never become secrets"
        )
    return rendered


def render_script(
    script: str, context: Mapping[str, Any], secret_args: set[int] | None = None
) -> tuple[str, dict[str, str], list[str]]:
    """Turn each `{{ expr }}` of a shell script into "${QLRF_ARG_n}" plus its value.

    The values travel as environment variables, so nothing a template renders can
    become shell code, whatever quotes or `$(...)` it holds. Returns the script,
    its environment, and the variables that may hold secret references.
    """
    env: dict[str, str] = {}
    secret_env: list[str] = []
    parts: list[str] = []
    at = 0
    for n, (start, end, expr) in enumerate(templates.expressions(script)):
        name = f"QLRF_ARG_{n}"
        text = "{{" + expr + "}}"
        if secret_args and n in secret_args:
            value = _render_secret_position(text, context)
            secret_env.append(name)
        else:
            value = render_string(text, context)
        env[name] = value if isinstance(value, str) else _to_text(value)
        parts.append(script[at:start])
        parts.append("${" + name + "}")
        at = end
    parts.append(script[at:])
    return "".join(parts), env, secret_env


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)
