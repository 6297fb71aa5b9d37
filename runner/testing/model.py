"""A test file as typed data: cases, their mocks, decisions, controls and expectations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.plan.model import Plan
from runner.testing.matchers import Matcher

# Who starts a case's run, and who acts when a control names nobody.
TESTER = "tester"


@dataclass(frozen=True)
class Failure:
    type: str
    message: str
    retry: bool = True


@dataclass(frozen=True)
class Outcome:
    """What an attempt answers: fail for the first `times` attempts (all, without
    `times`), then what `then` says (an empty output, without `then`)."""

    output: Any = None
    fail: Failure | None = None
    times: int | None = None
    then: Outcome | None = None

    def at(self, attempt: int) -> tuple[Any, Failure | None]:
        """(output, None) or (None, failure) for attempt number `attempt` (from 1)."""
        if self.fail is not None:
            if self.times is None or attempt <= self.times:
                return None, self.fail
            if self.then is not None:
                return self.then.at(attempt - self.times)
            return {}, None
        return ({} if self.output is None else self.output), None


@dataclass(frozen=True)
class Mock:
    outcome: Outcome | None  # the step's own answer, or every item's
    items: dict[str, Outcome] = field(default_factory=dict)
    default: Outcome | None = None
    compensate: Outcome | None = None

    def for_item(self, item: str | None) -> Outcome | None:
        if item is not None:
            if item in self.items:
                return self.items[item]
            if self.default is not None:
                return self.default
        return self.outcome


@dataclass(frozen=True)
class TimedDecision:
    gate: str
    after_ms: int
    by: str
    decision: str
    set: dict[str, Any] | None = None
    comment: str = ""


@dataclass(frozen=True)
class TimedControl:
    action: str
    at_ms: int
    by: str
    step: str | None = None
    items: list[str] = field(default_factory=list)
    concurrency: int | None = None
    comment: str = ""


@dataclass(frozen=True)
class StepExpect:
    status: str | None = None
    attempts: int | None = None
    output: dict[str, Matcher] | None = None
    error: str | None = None
    items: dict[str, str] | None = None


@dataclass(frozen=True)
class Expect:
    status: str | None = None
    error: str | None = None
    steps: dict[str, StepExpect] = field(default_factory=dict)
    compensated: list[str] | None = None
    outputs: dict[str, Matcher] = field(default_factory=dict)
    audit: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Case:
    name: str
    file: str  # the test file, as given
    line: int  # where the case is written, for annotations
    column: int
    inputs: dict[str, Any]  # resolved: defaults filled in, types checked
    started_by: str
    mocks: dict[str, Mock]
    decisions: list[TimedDecision]
    controls: list[TimedControl]
    expect: Expect


@dataclass
class Suite:
    """One test file: its runbook, compiled once, and its cases."""

    file: str
    runbook: Path
    plan: Plan
    source: bytes  # the runbook as read
    groups: dict[str, list[str]] | None  # None: this machine's (QLRF_GROUPS_FILE)
    cases: list[Case]
