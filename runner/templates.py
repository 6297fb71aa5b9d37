"""The template dialect shared by `validate` and the interpreter.

Jinja2 in an immutable sandbox, strict about undefined names, with the
non-deterministic helpers (`random`, `lipsum`) removed: templates are rendered
inside the Temporal workflow and must give the same result on every replay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

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
# One `{{ expr }}`; shell scripts are templated expression by expression.
EXPRESSION = re.compile(r"{{(.*?)}}", re.S)
_SINGLE_EXPR = re.compile(r"^\s*{{(?P<expr>.*)}}\s*$", re.S)


class _DataEnvironment(ImmutableSandboxedEnvironment):
    """`a.b` on a mapping reads its key `b` first, then the attribute.

    Runbook data is YAML and JSON: `steps.patch.output.items` means the fan-out's
    `items` list, not the mapping's `items` method that Jinja2 would give.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def new_environment() -> ImmutableSandboxedEnvironment:
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
    m = _SINGLE_EXPR.match(text)
    if not m or "{{" in m.group("expr") or "}}" in m.group("expr"):
        return None
    return m.group("expr")


@dataclass
class References:
    """What one template refers to, found without rendering it."""

    inputs: list[str] = field(default_factory=list)
    steps: list[tuple[str, str | None]] = field(default_factory=list)  # (step id, field)
    run: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # free names: loop variables or mistakes
    bare_roots: list[str] = field(default_factory=list)  # e.g. `{{ inputs }}` as a whole


def analyse(env: ImmutableSandboxedEnvironment, text: str) -> References:
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
