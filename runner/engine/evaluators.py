"""Steps evaluated in the workflow itself: a timer, a condition, an approval gate.

A step type names its evaluator in its definition (`capabilities.evaluator`);
nothing here looks at a type's name. A gate waits as a durable condition with
its deadline as the timeout, so a worker restart or a 24-hour wait loses nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from runner import durations
from runner.contract import GATE_NOTIFY_ACTIVITY
from runner.contract.vocab import AuditAction, GateStatus, NotifyEvent
from runner.engine import publish, render
from runner.engine.failures import StepFailed
from runner.engine.gates import Gate, GateDesk
from runner.engine.notices import Notices
from runner.engine.outbox import Outbox
from runner.engine.run_state import RunState
from runner.plan.model import Node
from runner.times import iso

# A gate's reminders beyond these are not kept (the schema allows as many).
MAX_REMINDERS = 10


@dataclass(frozen=True)
class GateTimer:
    """A reminder or the escalation of a waiting gate, as a durable timer."""

    at: datetime
    kind: str  # reminder | escalation
    index: int
    to: list[str] = field(default_factory=list)


class Evaluators:
    def __init__(
        self,
        run: RunState,
        desk: GateDesk,
        outbox: Outbox,
        gate_opened: Callable[[], None],
        *,
        legacy: bool,
    ) -> None:
        self.run = run
        self.desk = desk
        self.outbox = outbox
        self.gate_opened = gate_opened  # makes the store write soon: a waiting gate shows
        self.legacy = legacy
        self.notices: Notices | None = None  # runs from NOTIFY on (engine/notices.py)
        self._by_name: dict[str, Callable[[Node, dict[str, Any]], Awaitable[Any]]] = {
            "timer": self._timer,
            "condition": self._condition,
            "gate": self._gate,
        }

    async def evaluate(self, node: Node) -> Any:
        params = render.render(node.with_, self.run.context())
        evaluator = self._by_name.get(node.capabilities.evaluator or "")
        if evaluator is None:
            raise StepFailed(
                "StepTypeUnavailable",
                f"step type '{node.type}' is not available in this version of qlrf-run",
                1,
            )
        return await evaluator(node, params)

    async def _timer(self, node: Node, params: dict[str, Any]) -> Any:
        try:
            wait = durations.parse_ms(params["duration"])
        except ValueError as exc:
            raise StepFailed("InvalidDuration", str(exc), 1) from None
        await workflow.sleep(timedelta(milliseconds=wait), summary=node.name)
        return {}

    async def _condition(self, node: Node, params: dict[str, Any]) -> Any:
        if not render.truthy(params["that"]):
            message = params.get("message") or f"the condition {node.with_['that']} is false"
            raise StepFailed("AssertionFailed", str(message), 1)
        return {}

    async def _gate(self, node: Node, params: dict[str, Any]) -> Any:
        return await self.open_gate(node, params, node.id, node.with_.get("message", ""))

    async def open_gate(
        self, node: Node, params: dict[str, Any], gate_id: str, template: Any = None
    ) -> Any:
        """Open a gate and wait for its decision or its deadline; the step's output."""
        now = workflow.now()
        timeout_text = str(params.get("timeout") or "24h")  # as the operator wrote it
        timeout_ms = durations.parse_ms(timeout_text)
        gate = Gate(
            gate=gate_id,
            step=node.id,
            message=str(params.get("message", "")),
            approvers=[str(a) for a in params.get("approvers") or []],
            min_approvals=int(params.get("min_approvals") or 1),
            allow_self_approval=bool(params.get("allow_self_approval", False)),
            modifiable=[str(m) for m in params.get("modifiable") or []],
            on_timeout=str(params.get("on_timeout") or "reject"),
            opened_at=now,
            deadline=now + timedelta(milliseconds=timeout_ms),
            message_template=str(template if template is not None else params.get("message", "")),
        )
        self.desk.open(gate)
        self.gate_opened()
        self.outbox.audit(
            "gate_opened",
            None,
            {
                "gate": gate.gate,
                "step": gate.step,
                "message": gate.message,
                "approvers": gate.approvers,
                "deadline": iso(gate.deadline),
            },
        )
        # A gate the policy puts before the first step has no step of its own.
        state = self.run.steps.get(node.id)
        if state is not None:
            state.status = "waiting"
        self.run.touch(urgent=True)
        publish.waiting(self.desk, self.run)
        notices = [asyncio.create_task(self._notify(gate, 0))]
        telling = self.notices
        timers = self._timers(params, gate) if telling is not None else []
        if telling is not None:
            telling.send(NotifyEvent.GATE_WAITING, self._facts(gate), gate=gate.gate)
        evicted = False
        try:
            while gate.status == "waiting":
                now = workflow.now()
                remaining = gate.deadline - now
                if remaining <= timedelta(0):
                    gate.status = "timed_out"
                    break
                modifications = len(gate.modifications)
                # The deadline, or first a reminder or the escalation (runs from NOTIFY).
                timer = timers[0] if timers else None
                wait = (
                    remaining if timer is None else max(timer.at - now, timedelta(milliseconds=1))
                )
                try:
                    await workflow.wait_condition(
                        lambda seen=modifications: (  # type: ignore[misc]
                            gate.status != "waiting" or len(gate.modifications) > seen
                        ),
                        timeout=wait,
                        timeout_summary=f"gate {gate.gate}: "
                        + ("waiting for approval" if timer is None else timer.kind),
                    )
                except builtins.TimeoutError:
                    if timer is not None:
                        timers.pop(0)
                        self._fire(gate, timer)
                        continue
                    gate.status = "timed_out"
                if gate.status == "waiting" and not self.legacy:
                    # A modify asks again: the approvers hear of it again.
                    notices.append(asyncio.create_task(self._notify(gate, len(gate.modifications))))
                    if telling is not None:
                        telling.send(
                            NotifyEvent.GATE_WAITING,
                            self._facts(gate),
                            gate=gate.gate,
                            round_=len(gate.modifications),
                        )
        except GeneratorExit:
            # The worker dropped the run (it stops, or its cache is full), and the
            # garbage collector closes this coroutine, maybe while another run's code
            # runs: no workflow call may be made, or it would land in that run.
            evicted = True
            raise
        finally:
            if gate.status == "waiting":
                gate.status = "cancelled"
            if state is not None:
                state.status = "running"
            if not evicted:
                self.run.touch(urgent=True)
                publish.waiting(self.desk, self.run)
        for notice in notices:
            await notice
        if telling is not None:
            self._ended(telling, gate)
        return self._outcome(gate, timeout_text)

    def _timers(self, params: dict[str, Any], gate: Gate) -> list[GateTimer]:
        """The gate's reminders and escalation before its deadline, soonest first."""
        found: list[GateTimer] = []
        assert self.notices is not None  # asked only of runs that notify
        try:
            if self.notices.wants(NotifyEvent.GATE_REMINDER):
                reminders = list(params.get("remind") or [])[:MAX_REMINDERS]
                for n, after in enumerate(reminders):
                    at = gate.opened_at + timedelta(milliseconds=durations.parse_ms(str(after)))
                    found.append(GateTimer(at, "reminder", n))
            escalate = params.get("escalate")
            if isinstance(escalate, dict) and escalate.get("after"):
                after_ms = durations.parse_ms(str(escalate["after"]))
                to = [str(a) for a in escalate.get("to") or []]
                found.append(
                    GateTimer(
                        gate.opened_at + timedelta(milliseconds=after_ms), "escalation", 0, to
                    )
                )
        except ValueError as exc:
            raise StepFailed("InvalidDuration", f"gate {gate.gate}: {exc}", 1) from None
        return sorted((t for t in found if t.at < gate.deadline), key=lambda t: (t.at, t.kind))

    def _fire(self, gate: Gate, timer: GateTimer) -> None:
        telling = self.notices
        assert telling is not None
        rounds = len(gate.modifications)
        if timer.kind == "reminder":
            telling.send(
                NotifyEvent.GATE_REMINDER,
                self._facts(gate),
                gate=gate.gate,
                round_=rounds,
                seq=timer.index,
            )
            return
        # Escalation: more people may decide. A gate anyone may decide stays so.
        added = [a for a in timer.to if a not in gate.approvers] if gate.approvers else []
        gate.approvers.extend(added)
        self.outbox.audit(
            AuditAction.GATE_ESCALATED,
            None,
            {"gate": gate.gate, "step": gate.step, "added": added, "approvers": gate.approvers},
        )
        self.run.touch(urgent=True)
        publish.waiting(self.desk, self.run)
        telling.send(
            NotifyEvent.GATE_ESCALATED,
            {**self._facts(gate), "added": added or timer.to},
            gate=gate.gate,
            round_=rounds,
        )

    def _facts(self, gate: Gate) -> dict[str, Any]:
        """What a gate's notification says of it."""
        return {
            "name": self.run.plan.name,
            "step": gate.step,
            "message": gate.message,
            "approvers": list(gate.approvers),
            "min_approvals": gate.min_approvals,
            "approvals": len(gate.approvals),
            "deadline": iso(gate.deadline),
            "started_by": self.run.started_by,
        }

    def _ended(self, telling: Notices, gate: Gate) -> None:
        rounds = len(gate.modifications)
        if gate.status in (GateStatus.APPROVED, GateStatus.REJECTED):
            last: dict[str, Any] = dict(gate.decisions[-1]) if gate.decisions else {}
            telling.send(
                NotifyEvent.GATE_DECIDED,
                {
                    **self._facts(gate),
                    "status": str(gate.status),
                    "by": last.get("by"),
                    "comment": last.get("comment"),
                },
                gate=gate.gate,
                round_=rounds,
            )
        elif gate.status == GateStatus.TIMED_OUT:
            telling.send(
                NotifyEvent.GATE_TIMED_OUT,
                {**self._facts(gate), "status": "timed_out", "on_timeout": gate.on_timeout},
                gate=gate.gate,
                round_=rounds,
            )

    def _outcome(self, gate: Gate, timeout_text: str) -> dict[str, Any]:
        output: dict[str, Any] = {
            "decision": gate.status,
            "approvals": gate.approvals,
            "modifications": gate.modifications,
        }
        if gate.status == "approved":
            return output
        if gate.status == "rejected":
            last = gate.decisions[-1]
            reason = f": {last['comment']}" if last.get("comment") else ""
            # The step fails, and keeps what was decided, so that a step after it
            # (trigger_rule all_done) can record the rejection: who, and why.
            output["rejected_by"] = last["by"]
            output["comment"] = last.get("comment")
            raise StepFailed(
                "ApprovalRejected",
                f"gate '{gate.gate}' was rejected by {last['by']}{reason}",
                1,
                output=output,
            )
        # No decision before the deadline.
        if gate.on_timeout == "approve":
            output["decision"] = "approved"
            output["timed_out"] = True
            return output
        if gate.on_timeout == "fail":
            raise StepFailed(
                "ApprovalTimedOut",
                f"gate '{gate.gate}' had no decision within {timeout_text}",
                1,
                output=output,
            )
        raise StepFailed(
            "ApprovalRejected",
            f"gate '{gate.gate}' had no decision within {timeout_text}, so it is rejected",
            1,
            output=output,
        )

    async def _notify(self, gate: Gate, round_: int) -> None:
        """Tell the configured sinks that a gate waits; a failed notification never blocks it."""
        info = workflow.info()
        request = {
            "run": info.workflow_id,
            "gate": gate.gate,
            "message": gate.message,
            "approvers": gate.approvers,
            "deadline": iso(gate.deadline),
            "command": f"qlrf-run approve {info.workflow_id} {gate.gate}",
        }
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                GATE_NOTIFY_ACTIVITY,
                request,
                activity_id=f"notify:{gate.gate}" + (f":{round_}" if round_ else ""),
                summary=f"qlrf plumbing: notify the approvers of gate {gate.gate}",
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
