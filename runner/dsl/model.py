"""A read-only view of a runbook's steps for the semantic checks.

It is built even when the schema check failed, so every accessor tolerates
values of the wrong shape: a check must never crash on what a person typed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runner.contract.messages import Inputs, JsonObject
from runner.dsl.diagnostics import Path

MAIN, FINALLY = "steps", "finally"


@dataclass
class StepView:
    section: str  # "steps" | "finally"
    index: int
    data: dict[str, Any]
    needs: list[str]  # explicit needs, or the step above
    explicit_needs: bool
    ancestors: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return (self.section, self.index)

    @property
    def id(self) -> str | None:
        value = self.data.get("id")
        return value if isinstance(value, str) else None

    @property
    def type(self) -> str | None:
        value = self.data.get("type")
        return value if isinstance(value, str) else None

    @property
    def with_(self) -> JsonObject:
        value = self.data.get("with")
        return value if isinstance(value, dict) else {}

    @property
    def loop_var(self) -> str | None:
        if "foreach" not in self.data:
            return None
        value = self.data.get("as", "item")
        return value if isinstance(value, str) else "item"

    @property
    def trigger_rule(self) -> str:
        value = self.data.get("trigger_rule", "all_succeeded")
        return value if isinstance(value, str) else "all_succeeded"


@dataclass
class RunbookView:
    data: dict[str, Any]
    steps: list[StepView]

    @property
    def inputs(self) -> Inputs:
        value = self.data.get("inputs")
        return value if isinstance(value, dict) else {}

    def by_id(self) -> dict[str, StepView]:
        """First step with each id (duplicates are reported separately)."""
        out: dict[str, StepView] = {}
        for step in self.steps:
            if step.id is not None:
                out.setdefault(step.id, step)
        return out

    def section(self, name: str) -> Iterator[StepView]:
        return (s for s in self.steps if s.section == name)


def build(data: Any) -> RunbookView:
    data = data if isinstance(data, dict) else {}
    steps: list[StepView] = []
    for section in (MAIN, FINALLY):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        previous: str | None = None
        for i, item in enumerate(items):
            item = item if isinstance(item, dict) else {}
            raw = item.get("needs")
            if isinstance(raw, list):
                needs = [n for n in raw if isinstance(n, str)]
                explicit = True
            else:
                needs = [previous] if previous else []
                explicit = False
            view = StepView(section, i, item, needs, explicit)
            steps.append(view)
            if view.id is not None:
                previous = view.id
    return RunbookView(data, steps)
