"""What a test worker runs instead of the world: mocks, a run store in memory, and the
people who decide gates and control runs at simulated times.

- Every step type's activity is registered under its own name and answers from the
  case's mocks; with `--real TYPE` a step with no mock runs the real activity.
- The run store's activity keeps each run's events in memory, in the order written:
  the audit trail and the compensation order come from there.
- Time is the test server's: it skips ahead only when nothing runs. A decision must
  land `after` its gate opened, so the gate's notification (an activity, during which
  time stands still) starts a timer workflow for it, which sleeps `after` in simulated
  time and then delivers the decision through runner/app, as `qlrf-run approve` does.
  Controls are started the same way with the run, timed from its start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy

from runner.app.context import Context
from runner.app.control import ControlAsk, cancel, control
from runner.app.decide import DecideRequest, decide
from runner.client.connect import Target
from runner.contract import (
    GATE_NOTIFY_ACTIVITY,
    NOTIFY_DELIVER_ACTIVITY,
    STEP_ACTIVITIES,
    STORE_ACTIVITY,
    StepRequest,
    StepResult,
)
from runner.contract.events import StoreEvent, StoreWrite
from runner.contract.messages import JsonObject
from runner.contract.vocab import ControlAction, DecisionKind
from runner.durations import format_ms
from runner.steps.activities import BUILTIN
from runner.steps.common import fail, result
from runner.steps.secrets import Resolver
from runner.testing.model import Case, Outcome, TimedControl, TimedDecision
from runner.times import iso

DELIVER_ACTIVITY = "qlrf_test_deliver"
AT_WORKFLOW = "qlrf.test.At"
NO_MOCK = "NoMock"


@workflow.defn(name=AT_WORKFLOW)
class AtWorkflow:
    """Waits `after_ms` of (simulated) time, then delivers one decision or control."""

    @workflow.run
    async def run(self, ask: JsonObject) -> JsonObject:
        wait = int(ask.get("after_ms") or 0)
        if wait:
            await workflow.sleep(timedelta(milliseconds=wait), summary="until it is delivered")
        answer: JsonObject = await workflow.execute_activity(
            DELIVER_ACTIVITY,
            ask,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return answer


@dataclass
class CaseRun:
    """One case's run while it runs: its root workflow id, and what happened to it."""

    case: Case
    root: str
    events: dict[str, list[StoreEvent]] = field(default_factory=dict)  # by Temporal run id
    missing: list[str] = field(default_factory=list)  # "no mock for ..." messages
    assumed: list[str] = field(default_factory=list)  # steps that succeeded unmocked
    deciders: list[tuple[str, JsonObject]] = field(default_factory=list)  # (workflow id, ask)
    scheduled: set[int] = field(default_factory=set)  # decisions whose timer started

    def path_of(self, run_id: str) -> str | None:
        """ "" for the root run, CHILD(.CHILD) for a child runbook's run, else None."""
        if run_id == self.root:
            return ""
        if run_id.startswith(self.root + "."):
            return run_id[len(self.root) + 1 :]
        return None


class Stage:
    def __init__(
        self, client: Client, queue: str, real: frozenset[str], *, assume: bool = False
    ) -> None:
        self.client = client
        self.queue = queue
        self.real = real
        # `simulate`: a step with no recorded outcome (new in the edited runbook) succeeds
        # with an empty output, and is named as assumed, instead of failing the case.
        self.assume = assume
        self.runs: dict[str, CaseRun] = {}
        self.ctx = Context(
            client, Target("time-skipping test server", client.namespace, None, False)
        )

    # -- what the worker registers ----------------------------------------------------

    def overrides(self) -> dict[str, Callable[..., Any]]:
        found: dict[str, Callable[..., Any]] = {name: self._mock(name) for name in STEP_ACTIVITIES}
        found[STORE_ACTIVITY] = self._store()
        found[GATE_NOTIFY_ACTIVITY] = self._gate_notify()
        found[NOTIFY_DELIVER_ACTIVITY] = _notify_deliver
        return found

    def extra_activities(self) -> list[Callable[..., Any]]:
        return [self._deliver()]

    # -- the case's run ---------------------------------------------------------------

    def add(self, run: CaseRun) -> None:
        self.runs[run.root] = run

    def remove(self, run: CaseRun) -> None:
        self.runs.pop(run.root, None)

    def _find(self, run_id: str) -> tuple[CaseRun, str] | None:
        for run in self.runs.values():
            path = run.path_of(run_id)
            if path is not None:
                return run, path
        return None

    async def start_controls(self, run: CaseRun) -> None:
        """Every control's timer, started with the run: `at` counts from its start."""
        for j, spec in enumerate(run.case.controls):
            await self._start_at(run, f"{run.root}~control~{j}", _control_ask(run.root, spec))

    async def _start_at(self, run: CaseRun, workflow_id: str, ask: JsonObject) -> None:
        await self.client.start_workflow(AT_WORKFLOW, ask, id=workflow_id, task_queue=self.queue)
        run.deciders.append((workflow_id, ask))

    # -- activities -------------------------------------------------------------------

    def _mock(self, name: str) -> Callable[..., Any]:
        @activity.defn(name=name)
        async def answer(request: StepRequest) -> StepResult:
            return await self.answer(name, request)

        return answer

    async def answer(self, name: str, request: StepRequest) -> StepResult:
        secrets = Resolver()
        info = activity.info()
        found = self._find(request.run_id)
        if found is None:
            fail(secrets, NO_MOCK, f"run {request.run_id} is not a case of this test", retry=False)
        run, path = found
        key = f"{path}.{request.step}" if path else request.step
        compensation = info.activity_id.startswith("compensate:")
        mock = run.case.mocks.get(key)
        outcome: Outcome | None = None
        if mock is not None:
            outcome = mock.compensate if compensation else mock.for_item(request.item)
        if outcome is None:
            if name in self.real and name in BUILTIN:
                real: StepResult = await BUILTIN[name](request)
                return real
            if compensation:
                outcome = Outcome(output={})  # a compensation with no mock succeeds
            elif self.assume:
                run.assumed.append(key)  # by step: simulate notes it on the step's line
                outcome = Outcome(output={})
            else:
                item = f" (item {request.item})" if request.item is not None else ""
                message = (
                    f"no mock for {name} step `{key}`{item}; give it one under mocks:, "
                    f"or run {name} steps for real with --real {name}"
                )
                run.missing.append(message)
                fail(secrets, NO_MOCK, message, retry=False)
        output, failure = outcome.at(info.attempt)
        if failure is not None:
            fail(secrets, failure.type, failure.message, retry=failure.retry)
        return result(secrets, output)

    def _store(self) -> Callable[..., Any]:
        @activity.defn(name=STORE_ACTIVITY)
        async def store_record(raw: JsonObject) -> int:
            write = cast(StoreWrite, raw)
            for run in self.runs.values():
                if run.path_of(activity.info().workflow_id or "") is not None:
                    run.events.setdefault(write["run_id"], []).extend(write["events"])
            return len(write["events"])

        return store_record

    def _gate_notify(self) -> Callable[..., Any]:
        @activity.defn(name=GATE_NOTIFY_ACTIVITY)
        async def gate_notify(request: JsonObject) -> JsonObject:
            found = self._find(str(request.get("run")))
            if found is None:
                return {"sent": []}
            run, path = found
            gate = f"{path}.{request['gate']}" if path else str(request["gate"])
            for j, spec in enumerate(run.case.decisions):
                if spec.gate != gate or j in run.scheduled:
                    continue
                run.scheduled.add(j)
                ask = _decision_ask(str(request["run"]), str(request["gate"]), spec)
                await self._start_at(run, f"{run.root}~decision~{j}", ask)
            return {"sent": []}

        return gate_notify

    def _deliver(self) -> Callable[..., Any]:
        @activity.defn(name=DELIVER_ACTIVITY)
        async def deliver(ask: JsonObject) -> JsonObject:
            return {"refused": await self.deliver(ask), "at": iso(activity.info().started_time)}

        return deliver

    async def deliver(self, ask: JsonObject) -> str | None:
        """The run's refusal, or None when it took the decision or control."""
        run, by = str(ask["run"]), str(ask["by"])
        if ask["kind"] == "decision":
            decided = await decide(
                self.ctx,
                DecideRequest(
                    run,
                    str(ask["gate"]),
                    DecisionKind(str(ask["decision"])),
                    by,
                    comment=str(ask.get("comment") or ""),
                    assignments=[f"{k}={_typed(v)}" for k, v in (ask.get("set") or {}).items()],
                ),
            )
            return decided.refused
        action = ControlAction(str(ask["action"]))
        if action == ControlAction.CANCEL:
            return await cancel(self.ctx, run, by)
        done = await control(
            self.ctx,
            ControlAsk(
                run,
                action,
                by,
                comment=str(ask.get("comment") or ""),
                step=ask.get("step"),
                concurrency=ask.get("concurrency"),
                items=list(ask.get("items") or []),
            ),
        )
        return done.refused


def _typed(value: Any) -> str:
    """A value as `--set NAME=VALUE` takes it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _decision_ask(run: str, gate: str, spec: TimedDecision) -> JsonObject:
    return {
        "kind": "decision",
        "run": run,
        "gate": gate,
        "decision": spec.decision,
        "by": spec.by,
        "set": spec.set,
        "comment": spec.comment,
        "after_ms": spec.after_ms,
        "shown": f"{spec.decision} {spec.gate} by {spec.by} after {_duration(spec.after_ms)}",
    }


def _control_ask(run: str, spec: TimedControl) -> JsonObject:
    what = spec.action + (f" {spec.step}" if spec.step else "")
    return {
        "kind": "control",
        "run": run,
        "action": spec.action,
        "by": spec.by,
        "step": spec.step,
        "items": spec.items,
        "concurrency": spec.concurrency,
        "comment": spec.comment,
        "after_ms": spec.at_ms,
        "shown": f"{what} by {spec.by} at {_duration(spec.at_ms)}",
    }


def _duration(ms: int) -> str:
    return format_ms(ms)


@activity.defn(name=NOTIFY_DELIVER_ACTIVITY)
async def _notify_deliver(request: JsonObject) -> JsonObject:
    """A test sends no notification: it is recorded as sent, in the run's audit trail."""
    return {"status": "sent", "answer": "recorded by qlrf-run test; nothing was sent"}
