"""`qlrf-run simulate FILE --like RUN`: an edited runbook against a real run's outcomes.

The run store keeps every attempt of every step and item of RUN, with its output or
its failure, and every decision at its gates with when it came. Those become the
mocks and decisions of one case, run on the edited FILE in simulated time; what
each step did then is set beside what it would do now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.contract.vocab import STEP_TERMINAL
from runner.errors import InputError, QlrfError
from runner.plan import inputs as run_inputs
from runner.store.db import Row
from runner.testing import steps as plan_steps
from runner.testing.model import (
    TESTER,
    Case,
    Expect,
    Failure,
    Mock,
    Outcome,
    Suite,
    TimedDecision,
)
from runner.testing.verdict import Actual


@dataclass
class Recording:
    """What RUN did, read from the run store."""

    run: Row
    steps: list[Row]
    audit: list[Row]

    def ended(self) -> dict[str, Row]:
        """Each step's last terminal row (not its items')."""
        found: dict[str, Row] = {}
        for row in self.steps:
            if row["item"] is None and row["status"] in STEP_TERMINAL:
                found[str(row["step"])] = row
        return found


@dataclass
class Simulation:
    suite: Suite
    case: Case
    recording: Recording
    dropped_inputs: list[str] = field(default_factory=list)  # not inputs of FILE any more


def _outcome(failures: list[Row], success: Row | None) -> Outcome | None:
    """The attempts as they went: each recorded failure once, then the output."""
    then = None
    if success is not None:
        then = Outcome(output=success["output"] if success["output"] is not None else {})
    if not failures:
        return then
    outcome = then
    for i, row in enumerate(reversed(failures)):
        error = row["error"] if isinstance(row["error"], dict) else {}
        failure = Failure(str(error.get("type") or "StepFailed"), str(error.get("message") or ""))
        last = i == 0 and success is None
        # The last failure of a step that never succeeded repeats for every attempt left.
        outcome = Outcome(fail=failure, times=None if last else 1, then=None if last else outcome)
    return outcome


def mocks_of(recording: Recording) -> dict[str, Mock]:
    """The run's recorded outcomes as mocks, per step, per item, and compensations."""
    attempts: dict[tuple[str, str | None], tuple[dict[int, Row], Row | None]] = {}
    compensations: dict[str, Outcome] = {}
    for row in recording.steps:
        step, item, status = str(row["step"]), row["item"], str(row["status"])
        if status.startswith("compensation_") and status != "compensation_started":
            error = row["error"] if isinstance(row["error"], dict) else {}
            compensations[step] = (
                Outcome(output={})
                if status == "compensation_succeeded"
                else Outcome(fail=Failure(str(error.get("type") or "StepFailed"), ""))
            )
            continue
        failed, success = attempts.get((step, item), ({}, None))
        if status == "failed":
            failed[int(row["attempt"] or len(failed) + 1)] = row
        elif status == "succeeded":
            success = row
        attempts[(step, item)] = (failed, success)
    found: dict[str, Mock] = {}
    for (step, item), (failed, success) in attempts.items():
        outcome = _outcome([failed[k] for k in sorted(failed)], success)
        if outcome is None:
            continue
        mock = found.get(step) or Mock(outcome=None)
        if item is None:
            mock = Mock(outcome, mock.items, mock.default, mock.compensate)
        else:
            mock.items[str(item)] = outcome
        found[step] = mock
    for step, outcome in compensations.items():
        mock = found.get(step) or Mock(outcome=None)
        found[step] = Mock(mock.outcome, mock.items, mock.default, outcome)
    return found


def decisions_of(recording: Recording) -> list[TimedDecision]:
    """Each decision at the run's gates, as long after its gate opened as it came."""
    opened: dict[str, datetime] = {}
    found = []
    for row in recording.audit:
        detail = row["detail"] if isinstance(row["detail"], dict) else {}
        gate = str(detail.get("gate") or "")
        if row["action"] == "gate_opened":
            opened.setdefault(gate, row["at"])
        elif row["action"] == "gate_decided" and gate:
            since = row["at"] - opened.get(gate, row["at"])
            changes = detail.get("changes") if isinstance(detail.get("changes"), dict) else None
            found.append(
                TimedDecision(
                    gate=gate,
                    after_ms=max(0, int(since.total_seconds() * 1000)),
                    by=str(row["actor"] or TESTER),
                    decision=str(detail.get("decision")),
                    set={k: v.get("to") for k, v in changes.items()} if changes else None,
                    comment=str(detail.get("comment") or ""),
                )
            )
    return found


def simulation(suite: Suite, recording: Recording) -> Simulation:
    """One case: FILE with RUN's inputs (those FILE still has), outcomes and decisions."""
    declared = suite.plan.declarations()
    given = dict(recording.run["inputs"] or {})
    dropped = sorted(k for k in given if k not in declared)
    try:
        inputs = run_inputs.resolve(declared, {k: v for k, v in given.items() if k in declared})
    except InputError as exc:
        raise QlrfError(f"{suite.runbook} cannot take the inputs of the run: {exc}") from None
    gates = plan_steps.gates(suite.plan)
    case = Case(
        name=f"like {recording.run['workflow_id']}",
        file=str(suite.runbook),
        line=1,
        column=1,
        inputs=inputs,
        started_by=str(recording.run.get("started_by") or TESTER),
        mocks=mocks_of(recording),
        decisions=[d for d in decisions_of(recording) if d.gate in gates],
        controls=[],
        expect=Expect(),
    )
    return Simulation(suite, case, recording, dropped)


@dataclass(frozen=True)
class Change:
    step: str
    then: str  # how it ended in RUN, or "" when RUN had no such step
    now: str
    note: str


def changes(sim: Simulation, actual: Actual) -> list[Change]:
    """Every step of FILE (and of RUN), how it ended then and how it would now."""
    before = sim.recording.ended()
    found = []
    names = [name for name, _ in plan_steps.nodes(sim.suite.plan) if "." not in name]
    for name in [*names, *(s for s in before if s not in names)]:
        then_row = before.get(name)
        then = str(then_row["status"]) if then_row is not None else ""
        step = actual.step(name)
        now = step.status if step is not None else ""
        found.append(Change(name, then, now, _note(then_row, step, name in actual.assumed)))
    return found


def _note(then_row: Row | None, step: Any, assumed: bool) -> str:
    if step is None:
        return "no longer in the runbook"
    extra = " (no recorded outcome: assumed to succeed)" if assumed else ""
    if then_row is None:
        return f"new step: would {_verb(step.status)}{extra}"
    then = str(then_row["status"])
    if then != step.status:
        return f"would now {_verb(step.status)}{extra}"
    if then == "succeeded" and then_row["output"] != step.output:
        return "output differs"
    return "same"


def _verb(status: str) -> str:
    return {
        "succeeded": "run and succeed",
        "failed": "fail",
        "skipped": "be skipped",
        "cancelled": "be cancelled",
        "pending": "not start",
    }.get(status, status)
