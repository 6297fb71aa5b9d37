"""What a runbook's cases exercised: steps that ran, compensations, and each `when` and
trigger rule seen true and seen false."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runner.engine.dispatch import WHEN_FALSE
from runner.testing import steps as plan_steps
from runner.testing.verdict import CaseResult

# Rules that can be seen both ways: all_succeeded is the ordinary path, and always holds.
TRIGGER_RULES = ("all_done", "one_failed")


@dataclass
class Coverage:
    runbook: str
    cases: int = 0
    steps: dict[str, bool] = field(default_factory=dict)  # name -> ran in some case
    compensations: dict[str, bool] = field(default_factory=dict)
    when: dict[str, set[bool]] = field(default_factory=dict)
    rules: dict[str, set[bool]] = field(default_factory=dict)  # "step (rule)" -> seen

    def to_json(self) -> dict[str, Any]:
        def ways(seen: dict[str, set[bool]]) -> dict[str, list[bool]]:
            return {k: sorted(v) for k, v in seen.items()}

        return {
            "runbook": self.runbook,
            "cases": self.cases,
            "steps": {"ran": _yes(self.steps), "not_run": _no(self.steps)},
            "compensations": {
                "exercised": _yes(self.compensations),
                "not_exercised": _no(self.compensations),
            },
            "when": ways(self.when),
            "trigger_rules": ways(self.rules),
        }

    def lines(self) -> list[str]:
        out = [f"coverage of {self.runbook} ({self.cases} case(s))"]
        ran = _yes(self.steps)
        out.append(
            f"  steps          {len(ran)}/{len(self.steps)} ran"
            + (f"; never ran: {', '.join(_no(self.steps))}" if _no(self.steps) else "")
        )
        if self.compensations:
            done = _yes(self.compensations)
            missing = _no(self.compensations)
            out.append(
                f"  compensations  {len(done)}/{len(self.compensations)} exercised"
                + (f"; never: {', '.join(missing)}" if missing else "")
            )
        for title, seen in (("when", self.when), ("trigger rules", self.rules)):
            if not seen:
                continue
            both = [k for k, v in seen.items() if len(v) == 2]
            out.append(f"  {title:<14} {len(both)}/{len(seen)} seen both ways")
            for name, ways in seen.items():
                if len(ways) < 2:
                    shown = "never" if not ways else f"only {str(next(iter(ways))).lower()}"
                    out.append(f"    {name}: {shown}")
        return out


def _yes(found: dict[str, bool]) -> list[str]:
    return [k for k, v in found.items() if v]


def _no(found: dict[str, bool]) -> list[str]:
    return [k for k, v in found.items() if not v]


def measure(results: Iterable[CaseResult]) -> list[Coverage]:
    """One Coverage per runbook, over every case that ran it."""
    by_runbook: dict[str, Coverage] = {}
    for result in results:
        suite = result.suite
        key = str(suite.runbook)
        cov = by_runbook.get(key)
        if cov is None:
            cov = by_runbook[key] = _empty(key, suite.plan)
        cov.cases += 1
        actual = result.actual
        if actual is None:
            continue
        for name, node in plan_steps.nodes(suite.plan):
            step = actual.step(name)
            if step is None:
                continue
            started = step.started_at is not None and step.status != "skipped"
            cov.steps[name] = cov.steps[name] or started
            if name in cov.compensations and step.compensation is not None:
                cov.compensations[name] = True
            when_false = step.status == "skipped" and step.reason == WHEN_FALSE
            if name in cov.when and (started or when_false):
                cov.when[name].add(not when_false)
            rule = f"{name} ({node.trigger_rule})"
            if rule in cov.rules:
                if started or when_false:
                    cov.rules[rule].add(True)
                elif step.status == "skipped":
                    cov.rules[rule].add(False)
    return list(by_runbook.values())


def _empty(key: str, plan: Any) -> Coverage:
    cov = Coverage(key)
    for name, node in plan_steps.nodes(plan):
        cov.steps[name] = False
        if node.compensate is not None:
            cov.compensations[name] = False
        if node.when is not None and not isinstance(node.when, bool):
            cov.when[name] = set()
        if node.trigger_rule in TRIGGER_RULES:
            cov.rules[f"{name} ({node.trigger_rule})"] = set()
    return cov
