"""The state of one run: its plan, inputs, steps, pause, and what templates see.

Pure data, no Temporal import: the interpreter passes in the workflow's clock and
ids. The template context is a live view of the steps, read when a template asks
for it, so rendering costs the same in a run of ten steps as in one of thousands.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.contract import DEFAULT_CONCURRENCY, lock_wait_text
from runner.contract.state import (
    AttemptFailure,
    ControlJson,
    ErrorJson,
    FanoutView,
    InputChange,
    LockHolderJson,
    LockView,
    StepView,
)
from runner.engine.render import Secrets
from runner.plan.model import Node, Plan
from runner.templates import Facts
from runner.times import iso

TERMINAL = frozenset(("succeeded", "failed", "skipped", "cancelled"))


@dataclass
class StepState:
    status: str = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    error: ErrorJson | None = None
    reason: str | None = None  # why a step was skipped or cancelled
    compensation: dict[str, Any] | None = None
    last_attempt_at: str | None = None  # when the attempt that ended the step began
    # The attempts that failed before the last one: why each was retried.
    failed_attempts: list[AttemptFailure] = field(default_factory=list)
    worker: str | None = None  # pid@host of the worker that ran the last attempt

    def view(self, fanout: FanoutView | None = None) -> StepView:
        return StepView(
            status=self.status,
            attempts=self.attempts,
            started_at=iso(self.started_at),
            finished_at=iso(self.finished_at),
            output=self.output,
            error=self.error,
            reason=self.reason,
            compensation=self.compensation,
            failed_attempts=self.failed_attempts,
            fanout=fanout,
        )

    def for_templates(self) -> dict[str, Any]:
        """`steps.<id>` as templates see it (docs/language.md)."""
        duration = None
        if self.started_at and self.finished_at:
            duration = (self.finished_at - self.started_at).total_seconds()
        return {
            "output": self.output,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_seconds": duration,
        }


@dataclass
class LockHold:
    """One lock key the run asked for, for itself (`step` None) or for one step."""

    key: str
    token: str  # what releases it: never shown
    step: str | None
    status: str  # requesting | waiting | held
    since: datetime  # when asked; once held, when granted
    holder: LockHolderJson | None = None  # whom it waits for, as the lock told it
    position: int | None = None  # its place in the line

    def view(self) -> LockView:
        return LockView(
            key=self.key,
            step=self.step,
            status=self.status,
            since=iso(self.since),
            holder=self.holder,
            position=self.position,
        )

    def waiting_text(self) -> str:
        """`waiting for lock db:prod-1 (held by run R since T)`, as people see it."""
        return lock_wait_text(self.key, self.holder)


def _ended(status: str) -> str:
    return {
        "pending": "has not run",
        "running": "is still running",
        "skipped": "was skipped",
        "cancelled": "was cancelled",
    }.get(status, status)


class StepsView(Mapping[str, Mapping[str, Any]]):
    """`steps` in templates: each step's current facts, made when a template reads them."""

    def __init__(self, steps: Mapping[str, StepState]) -> None:
        self._steps = steps

    def __getitem__(self, step_id: str) -> Mapping[str, Any]:
        state = self._steps[step_id]
        facts = state.for_templates()
        if state.output is not None or state.status == "succeeded":
            return facts
        why = f"`{step_id}` {_ended(state.status)}"
        if state.error:
            why += f" ({state.error.get('type')})"
        elif state.reason:
            why += f" ({state.reason})"
        return Facts(facts, {"output": f"`steps.{step_id}.output` is undefined: {why}"})

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


class RunState:
    """Everything the run knows about itself; the `state` query shows it."""

    def __init__(
        self,
        plan: Plan,
        inputs: Mapping[str, Any],
        started_by: str,
        groups: Mapping[str, list[str]],
        workflow_id: str,
        started_at: datetime,
        redrive: Mapping[str, Any] | None = None,
    ) -> None:
        self.plan = plan
        # What a redrive keeps from the run it redrives: steps' outputs, items done.
        self.redrive_of: str | None = (redrive or {}).get("of")
        self.kept_steps: dict[str, Any] = dict((redrive or {}).get("steps") or {})
        self.kept_items: dict[str, set[str]] = {
            sid: {str(k) for k in keys}
            for sid, keys in ((redrive or {}).get("items") or {}).items()
        }
        # Fan-outs from a file whose done items the worker reads from the store.
        self.redrive_paged: set[str] = {str(s) for s in (redrive or {}).get("paged") or ()}
        self.inputs: dict[str, Any] = dict(inputs)
        self.started_by = started_by
        self.groups = {str(k): list(v) for k, v in groups.items()}
        self.declarations = plan.declarations()
        self.nodes: dict[str, Node] = {n.id: n for n in (*plan.nodes, *plan.finally_nodes)}
        self.steps: dict[str, StepState] = {sid: StepState() for sid in self.nodes}
        self.status = "running"
        self.error: ErrorJson | None = None
        self.outputs: Any = None
        self.started_at = started_at
        self.finished_at: datetime | None = None
        self.paused = False
        self.controls: list[ControlJson] = []
        self.locks: dict[str, LockHold] = {}  # by token: the keys asked for and held
        self.waiting_published: list[str] = []  # the gates and locks last published
        self.version = 0  # bumped on every change people can see (runner/engine/publish.py)
        self.urgent_version = 0  # the latest change to publish without delay
        self._context: dict[str, Any] = {
            # The same mapping as self.inputs: a modify at a gate reaches later templates.
            "inputs": self.inputs,
            "steps": StepsView(self.steps),
            "run": {
                "id": workflow_id,
                "name": plan.name,
                "kind": plan.kind,
                "started_by": started_by,
                "started_at": iso(started_at),
            },
            "secrets": Secrets(),
        }

    def lock_waits(self) -> list[str]:
        """The keys the run or its steps wait for, as `lock:KEY` (published with the gates)."""
        return sorted({f"lock:{h.key}" for h in self.locks.values() if h.status != "held"})

    def touch(self, *, urgent: bool = False) -> None:
        """Something people can see has changed: publish it. An urgent change (a gate, a
        pause) is published at once; others gather for a while (publish.py)."""
        self.version += 1
        if urgent:
            self.urgent_version = self.version

    @property
    def run_limit(self) -> int:
        """Steps (and each fan-out's items) at once in this run."""
        return self.plan.concurrency or DEFAULT_CONCURRENCY

    def context(self, **loop: Any) -> Mapping[str, Any]:
        """What templates see; `loop` adds a fan-out's loop variable."""
        return {**self._context, **loop} if loop else self._context

    def status_of(self, step_id: str) -> str:
        return self.steps[step_id].status

    def knows(self, step_id: str) -> bool:
        return step_id in self.steps

    def skip(self, step_id: str, reason: str, now: datetime) -> StepState:
        state = self.steps[step_id]
        state.status = "skipped"
        state.reason = reason
        state.finished_at = now
        return state

    def change_inputs(self, changes: Mapping[str, Any]) -> dict[str, InputChange]:
        """Apply a gate's modification; returns {name: {from, to}}."""
        recorded: dict[str, InputChange] = {
            key: {"from": self.inputs.get(key), "to": value} for key, value in changes.items()
        }
        self.inputs.update(changes)
        return recorded
