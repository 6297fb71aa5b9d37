"""The words of a run: statuses, decisions, control actions and audit actions.

Each is a StrEnum, so a member is the very string that travels in JSON, in history
and in the run store (`RunStatus.RUNNING == "running"`), and code that matches on
one is checked by mypy instead of by a string that may be misspelt. The groups
(TERMINAL, ACTIVE, ...) say which statuses end a thing, as orquesta's statuses do.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"  # Temporal's own timeout of the run
    TERMINATED = "terminated"  # by Temporal, not by the run


RUN_TERMINAL = frozenset(set(RunStatus) - {RunStatus.RUNNING})


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # at an approval gate, or a fan-out's wave gate
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


STEP_TERMINAL = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)
STEP_ACTIVE = frozenset({StepStatus.RUNNING, StepStatus.WAITING})


class GateStatus(StrEnum):
    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


GATE_TERMINAL = frozenset(set(GateStatus) - {GateStatus.WAITING})


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    MODIFY = "modify"


class ControlAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CONCURRENCY = "concurrency"  # a fan-out's items at once
    SKIP = "skip"  # fan-out items left out
    # Records who asked for a cancel; the cancel itself is Temporal's own request.
    CANCEL = "cancel"


class LockStatus(StrEnum):
    REQUESTING = "requesting"
    WAITING = "waiting"
    HELD = "held"


class AuditAction(StrEnum):
    """What the run store's `audit` table says happened (docs/store.md)."""

    RUN_STARTED = "run_started"
    RUN_REFUSED = "run_refused"
    RUN_FINISHED = "run_finished"
    GATE_DECIDED = "gate_decided"
    INPUTS_MODIFIED = "inputs_modified"  # a modify at a gate, with what changed
    STEP_KEPT = "step_kept"  # a redrive kept the original's outcome
    WAVE_STARTED = "wave_started"
    WAVE_FINISHED = "wave_finished"
    LOCK_ACQUIRED = "lock_acquired"
    LOCK_RELEASED = "lock_released"
    RUN_PAUSED = "run_paused"
    RUN_RESUMED = "run_resumed"
    CONCURRENCY_SET = "concurrency_set"
    ITEMS_SKIPPED = "items_skipped"
    CANCEL_REQUESTED = "cancel_requested"
    GATE_ESCALATED = "gate_escalated"  # more approvers, after the gate's `escalate.after`
    NOTIFICATION_SENT = "notification_sent"
    NOTIFICATION_FAILED = "notification_failed"  # with the reason; the run goes on


class NotifyEvent(StrEnum):
    """What a notification route listens for (QLRF_NOTIFY_CONFIG routes, runbooks' notify:)."""

    RUN_STARTED = "run_started"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    GATE_WAITING = "gate_waiting"
    GATE_REMINDER = "gate_reminder"
    GATE_ESCALATED = "gate_escalated"
    GATE_DECIDED = "gate_decided"
    GATE_TIMED_OUT = "gate_timed_out"
    WAVE_BUDGET_SPENT = "wave_budget_spent"
    LOCK_WAITING = "lock_waiting"


# The control action each audit action records, and the word evidence uses for it.
AUDITED_CONTROL = {
    ControlAction.PAUSE: AuditAction.RUN_PAUSED,
    ControlAction.RESUME: AuditAction.RUN_RESUMED,
    ControlAction.CONCURRENCY: AuditAction.CONCURRENCY_SET,
    ControlAction.SKIP: AuditAction.ITEMS_SKIPPED,
    ControlAction.CANCEL: AuditAction.CANCEL_REQUESTED,
}
