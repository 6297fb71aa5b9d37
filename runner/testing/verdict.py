"""What a case's run did, and where it differs from what the case expects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.contract.events import StoreEvent
from runner.contract.state import RunView, StepView
from runner.contract.vocab import STEP_TERMINAL
from runner.testing import steps as plan_steps
from runner.testing.matchers import shown
from runner.testing.model import Case, Expect, StepExpect, Suite


@dataclass
class Actual:
    """The run as it ended: its view, its children's, and what the run store got."""

    view: RunView
    children: dict[str, RunView] = field(default_factory=dict)  # by dotted step name
    events: dict[str, list[StoreEvent]] = field(default_factory=dict)  # by dotted run path
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)  # simulate: steps with no outcome

    def step(self, name: str) -> StepView | None:
        path, _, step = name.rpartition(".")
        view = self.children.get(path) if path else self.view
        return view.steps.get(step) if view is not None else None

    def audit(self) -> list[StoreEvent]:
        return [e for e in self.events.get("", []) if e["table"] == "audit"]

    def compensated(self) -> list[str]:
        """Steps whose compensation started, in the order they started."""
        found = []
        for path, events in sorted(self.events.items()):
            for e in events:
                if e["table"] == "step" and e["status"] == "compensation_started":
                    found.append(f"{path}.{e['step']}" if path else str(e["step"]))
        return found

    def items(self, name: str) -> dict[str, str]:
        """A fan-out's items by name, and how each ended."""
        path, _, step = name.rpartition(".")
        found: dict[str, str] = {}
        for e in self.events.get(path, []):
            if e["table"] != "step" or e["step"] != step or e["item"] is None:
                continue
            if e["status"] in STEP_TERMINAL:
                found[str(e["item"])] = str(e["status"])
        return found


@dataclass(frozen=True)
class Mismatch:
    what: str
    expected: str
    actual: str


@dataclass
class CaseResult:
    suite: Suite
    case: Case
    seconds: float
    actual: Actual | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    broken: str | None = None  # the case could not run to its end: why

    @property
    def passed(self) -> bool:
        return self.broken is None and not self.mismatches


def compare(expect: Expect, actual: Actual) -> list[Mismatch]:
    """Every difference between what the case expects and what the run did."""
    found = [Mismatch("mocks", "a mock for every activity step", m) for m in actual.missing]
    view = actual.view
    if expect.status is not None and view.status != expect.status:
        found.append(Mismatch("status", expect.status, _run_end(view)))
    if expect.error is not None:
        got = view.error.get("type") if view.error else None
        if got != expect.error:
            found.append(Mismatch("error", expect.error, shown(got)))
    for name, want in expect.steps.items():
        found += _step(name, want, actual)
    if expect.compensated is not None:
        order = actual.compensated()
        if order != expect.compensated:
            found.append(Mismatch("compensated", _order(expect.compensated), _order(order)))
    outputs = view.outputs if isinstance(view.outputs, dict) else {}
    for name, matcher in expect.outputs.items():
        value = outputs.get(name)
        if not matcher.holds(value):
            found.append(Mismatch(f"outputs.{name}", matcher.describe(), shown(value)))
    found += _audit(expect.audit, actual.audit())
    return found


def _run_end(view: RunView) -> str:
    if view.error:
        return f"{view.status} ({view.error.get('type')}: {shown(view.error.get('message'), 80)})"
    return view.status


def _order(names: list[str]) -> str:
    return ", then ".join(names) if names else "(none)"


def _step(name: str, want: StepExpect, actual: Actual) -> list[Mismatch]:
    got = actual.step(name)
    found = []
    where = f"steps.{name}"
    if got is None:
        return [Mismatch(where, want.status or "to run", "never reached")]
    if want.status is not None and got.status != want.status:
        found.append(Mismatch(f"{where}.status", want.status, describe_step(got)))
    if want.attempts is not None and got.attempts != want.attempts:
        found.append(Mismatch(f"{where}.attempts", str(want.attempts), str(got.attempts)))
    if want.error is not None:
        kind = got.error.get("type") if got.error else None
        if kind != want.error:
            found.append(Mismatch(f"{where}.error", want.error, shown(kind)))
    for key, matcher in (want.output or {}).items():
        output = got.output if isinstance(got.output, dict) else {}
        if not matcher.holds(output.get(key)):
            found.append(
                Mismatch(f"{where}.output.{key}", matcher.describe(), shown(output.get(key)))
            )
    if want.items is not None:
        items = actual.items(name)
        for item, status in want.items.items():
            if items.get(item) != status:
                found.append(
                    Mismatch(f"{where}.items.{item}", status, items.get(item) or "never ran")
                )
    return found


def describe_step(step: StepView) -> str:
    text = step.status
    if step.attempts > 1:
        text += f" after {step.attempts} attempts"
    if step.error:
        text += f" ({step.error.get('type')})"
    return text


def _audit(wanted: list[dict[str, str]], got: list[StoreEvent]) -> list[Mismatch]:
    """Each expected event, in order, among the run's (others may come between)."""
    i = 0
    for n, want in enumerate(wanted):
        while i < len(got) and not _audit_matches(want, got[i]):
            i += 1
        if i == len(got):
            seen = ", ".join(_audit_text(e) for e in got) or "(none)"
            return [
                Mismatch(f"audit[{n}]", _want_text(want), f"not found after; the audit: {seen}")
            ]
        i += 1
    return []


def _audit_matches(want: dict[str, str], event: StoreEvent) -> bool:
    if event["table"] != "audit" or event["action"] != want["event"]:
        return False
    if "actor" in want and event["actor"] != want["actor"]:
        return False
    detail = event["detail"] if isinstance(event["detail"], dict) else {}
    if "notification" in want and str(detail.get("event")) != want["notification"]:
        return False
    return all(str(detail.get(k)) == v for k, v in want.items() if k in ("gate", "step"))


def _audit_text(event: StoreEvent) -> str:
    if event["table"] != "audit":
        return ""
    actor = f" by {event['actor']}" if event["actor"] else ""
    return f"{event['action']}{actor}"


def _want_text(want: dict[str, str]) -> str:
    extra = "".join(f" {k}={v}" for k, v in want.items() if k not in ("event", "actor"))
    actor = f" by {want['actor']}" if "actor" in want else ""
    return f"{want['event']}{actor}{extra}"


def path_lines(suite: Suite, actual: Actual) -> list[str]:
    """The run's path as it happened: each step's end, in the runbook's order."""
    lines = []
    for name, _node in plan_steps.nodes(suite.plan):
        got = actual.step(name)
        if got is None:
            continue
        line = f"{name}: {describe_step(got)}"
        items = actual.items(name)
        failed = sorted(k for k, v in items.items() if v == "failed")
        if items:
            line += f" [{len(items)} items, failed: {', '.join(failed) or 'none'}]"
        if got.compensation:
            line += f"; compensation {got.compensation.get('status')}"
        lines.append(line)
    lines += [delivered(d) for d in actual.deliveries]
    return lines


def delivered(delivery: dict[str, Any]) -> str:
    """What became of a decision or control: taken, or the run's refusal."""
    refused = delivery.get("refused")
    return f"{delivery['shown']}: " + (f"refused: {refused}" if refused else "taken")
