"""The template dialect shared by `validate` and the interpreter.

Jinja2 in an immutable sandbox, strict about undefined names, with the
non-deterministic helpers (`random`, `lipsum`) removed: templates are rendered
inside the Temporal workflow and must give the same result on every replay.
Every render runs under a budget (runner/template_budget.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.environment import Template, TemplateExpression
from jinja2.parser import Parser

from runner.secretref import SecretRef
from runner.template_budget import BudgetedEnvironment, guard

__all__ = ["BudgetedEnvironment"]  # the environment templates are rendered in

# Names a template may start from, besides loop variables.
ROOTS = ("inputs", "steps", "run", "secrets")
STEP_FIELDS = (
    "output",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "duration_seconds",
)
RUN_FIELDS = ("id", "name", "started_by", "started_at", "kind")

_MARKERS = re.compile(r"{{|{%|{#")


class Facts(dict[str, Any]):
    """A mapping some of whose names are known to be absent, and why: reading one fails
    with that reason (`steps.review.output` of a step that failed), not with Jinja2's
    "not JSON serializable" from deep inside a filter."""

    def __init__(self, values: Mapping[str, Any], missing: Mapping[str, str]) -> None:
        super().__init__(values)
        self.missing = dict(missing)


class _DataEnvironment(BudgetedEnvironment):
    """`a.b` on a mapping reads its key `b` first, then the attribute.

    Runbook data is YAML and JSON: `steps.patch.output.items` means the fan-out's
    `items` list, not the mapping's `items` method that Jinja2 would give.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, SecretRef):
            return self._secret_field(obj, attribute)
        if isinstance(obj, Facts) and attribute in obj.missing:
            return self.undefined(hint=obj.missing[attribute], obj=obj, name=attribute)
        if isinstance(obj, Mapping) and attribute in obj:
            return self.getitem(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, SecretRef) and isinstance(argument, str):
            return self._secret_field(obj, argument)
        if isinstance(obj, Facts) and isinstance(argument, str) and argument in obj.missing:
            return self.undefined(hint=obj.missing[argument], obj=obj, name=argument)
        return super().getitem(obj, argument)

    def _secret_field(self, obj: SecretRef, name: str) -> Any:
        found = obj.field(name)
        if found is None:
            return self.undefined(
                hint=f"secrets.{obj.secret} has no field {name!r}", obj=obj, name=name
            )
        return found


def new_environment() -> BudgetedEnvironment:
    """A fresh environment with the deterministic subset of Jinja2."""
    env = _DataEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters.pop("random", None)
    env.globals.pop("lipsum", None)
    env.globals.pop("cycler", None)
    env.globals.pop("joiner", None)
    return env


def is_template(value: object) -> bool:
    """True for a string that Jinja2 would treat as more than literal text."""
    return isinstance(value, str) and bool(_MARKERS.search(value))


def single_expression(text: str) -> str | None:
    """The inner expression when `text` is exactly one `{{ expr }}` (it keeps its native type)."""
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or len(stripped) < 4:
        return None
    inner = stripped[2:-2]
    if "{{" in inner or "}}" in inner:
        return None
    return inner


def expressions(text: str) -> list[tuple[int, int, str]]:
    """Each `{{ expr }}` of `text` as (start, end, expr), found in linear time.

    Shell scripts are templated expression by expression. A `{{` without a later
    `}}` ends the search: no later `{{` can have one either.
    """
    found: list[tuple[int, int, str]] = []
    at = 0
    while True:
        start = text.find("{{", at)
        if start < 0:
            return found
        end = text.find("}}", start + 2)
        if end < 0:
            return found
        found.append((start, end + 2, text[start + 2 : end]))
        at = end + 2


def compile_template(env: BudgetedEnvironment, text: str) -> Template:
    """`text` as a template whose loops, `~` and output count against the budget."""
    return env.from_string(guard(env.parse(text)))


def compile_expression(env: BudgetedEnvironment, expr: str) -> TemplateExpression:
    """One expression, keeping its native type, under the budget like a template."""
    parser = Parser(env, expr, state="variable")
    try:
        body = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                "chunk after expression", parser.stream.current.lineno, None, None
            )
        body.set_environment(env)
    except TemplateSyntaxError:
        env.handle_exception(source=expr)
    assign = nodes.Assign(nodes.Name("result", "store"), body, lineno=1)
    tree = nodes.Template([assign], lineno=1)
    return TemplateExpression(env.from_string(guard(tree)), undefined_to_none=False)


@dataclass
class References:
    """What one template refers to, found without rendering it."""

    inputs: list[str] = field(default_factory=list)
    steps: list[tuple[str, str | None]] = field(default_factory=list)  # (step id, field)
    run: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # free names: loop variables or mistakes
    bare_roots: list[str] = field(default_factory=list)  # e.g. `{{ inputs }}` as a whole


def analyse(env: BudgetedEnvironment, text: str) -> References:
    """Parse `text` and list its references; raises jinja2.TemplateSyntaxError."""
    tree = env.parse(text)
    refs = References()
    local = _locally_bound(tree)
    _walk(tree, refs, local)
    return refs


def _locally_bound(tree: nodes.Template) -> set[str]:
    """Names a template binds itself ({% set %}, {% for %}, macro arguments)."""
    bound: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.AssignBlock)):
        target = getattr(node, "target", None)
        if target is not None:
            for name in target.find_all(nodes.Name):
                bound.add(name.name)
            if isinstance(target, nodes.Name):
                bound.add(target.name)
        for arg in getattr(node, "args", []) or []:
            if isinstance(arg, nodes.Name):
                bound.add(arg.name)
    bound.add("loop")
    return bound


def _attr(node: nodes.Node) -> str | None:
    """The attribute a Getattr/Getitem selects, when it is a constant."""
    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return str(node.arg.value)
    return None


def _walk(node: nodes.Node, refs: References, local: set[str]) -> None:
    # Chains like steps.x.output.y are Getattr(Getattr(Getattr(Name(steps)))): find
    # the root name and the first two selectors, then keep walking the rest.
    stack: list[nodes.Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, nodes.Getattr | nodes.Getitem):
            chain: list[str | None] = []
            inner: nodes.Node = current
            while isinstance(inner, nodes.Getattr | nodes.Getitem):
                chain.append(_attr(inner))
                if isinstance(inner, nodes.Getitem):
                    stack.append(inner.arg)
                inner = inner.node
            chain.reverse()
            if isinstance(inner, nodes.Name) and inner.ctx == "load":
                _record(inner.name, chain, refs, local)
            else:
                stack.append(inner)
            continue
        if isinstance(current, nodes.Name):
            if current.ctx == "load":
                _record(current.name, [], refs, local)
            continue
        stack.extend(current.iter_child_nodes())


def _record(name: str, chain: list[str | None], refs: References, local: set[str]) -> None:
    if name in local:
        return
    first = chain[0] if chain else None
    if name not in ROOTS:
        refs.other.append(name)
    elif first is None:
        refs.bare_roots.append(name)
    elif name == "inputs":
        refs.inputs.append(first)
    elif name == "steps":
        refs.steps.append((first, chain[1] if len(chain) > 1 else None))
    elif name == "run":
        refs.run.append(first)
    else:
        refs.secrets.append(first)


# Names a template may use that are not data: Jinja's own globals and the loop.
_GLOBALS = {"range", "dict", "namespace", "loop", "true", "false", "none", "True", "False", "None"}
# Nodes worth evaluating on their own: anything that computes something.
_COMPUTING = (nodes.BinExpr, nodes.Filter, nodes.Call, nodes.Concat, nodes.CondExpr, nodes.Test)


def _closed(node: nodes.Node, local: Collection[str] = ()) -> bool:
    """The expression uses no data: it gives the same value in every run."""
    return all(
        name.name in _GLOBALS or name.name in local or name.ctx != "load"
        for name in node.find_all(nodes.Name)
    )


def budget_problem(env: BudgetedEnvironment, text: str) -> str | None:
    """Why a template is certain to go over its budget whatever the run's data (a
    constant such as `'a' * 10**9`, or loops over constants); None when it is not."""
    from runner.template_budget import BudgetExceeded, scope

    try:
        tree = env.parse(text)
    except (TemplateSyntaxError, RecursionError):
        return None
    candidates: list[nodes.Expr] = []

    def visit(node: nodes.Node) -> None:
        if isinstance(node, _COMPUTING) and _closed(node):
            candidates.append(node)
            return
        for child in node.iter_child_nodes():
            visit(child)

    whole = _closed(tree, _locally_bound(tree))
    if not whole:
        visit(tree)
    try:
        with scope():
            if whole:
                compile_template(env, text).render()
                return None
        for candidate in candidates:
            with scope():
                output = nodes.Template([nodes.Output([candidate])], lineno=1)
                env.from_string(guard(output)).render()
    except BudgetExceeded as exc:
        return str(exc)
    except Exception:
        return None  # anything else depends on the run, or is reported elsewhere
    return None
