"""What changed in a run since the last look, as events in the order they happened.

`apply` and `watch` poll the run's state; each look is compared with the one
before, and every change becomes an Event stamped with the run's own time of it
(a step's end, a gate's opening, a decision). Events of one look are sorted by
that time, so a step's end comes before the gate it opened, whatever order the
state lists them in. Each thing is said once: a gate is announced once per round
of approval, and its decision names who made it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runner.client.state import Attempt, Snapshot
from runner.contract import lock_wait_text
from runner.contract.state import (
    ControlJson,
    GateView,
    LockView,
    ModificationJson,
    RunView,
    StepView,
    WaveJson,
    error_text,
)
from runner.contract.vocab import GateStatus, StepStatus
from runner.times import between, human_duration, human_until, iso

# A running wave's counts are logged again at most this often (a terminal redraws them).
WAVE_PROGRESS_SECONDS = 5.0
OUTPUT_TEXT = 300
# How long no worker may answer before the progress says so.
NO_WORKER_SECONDS = 3.0
# How long a run that has ended may wait for the run store before the progress says so.
STORE_WAIT_SECONDS = 10.0


# What comes first among things of the same instant (the run's clock stands still
# within one of its workflow tasks): a decision; then what ended, items before their
# wave and waves before their step; then what started, a step before its waves; then
# the gates that opened.
DECIDED, ITEM_ENDED, WAVE_ENDED, ENDED, STARTED, WAVE_STARTED, OPENED = range(7)


@dataclass(order=True)
class Event:
    at: str  # ISO time in the run's clock; "" when unknown (sorted first)
    rank: int
    seq: int
    subject: str = field(compare=False)  # a step, `gate X`, a wave, the run
    text: str = field(compare=False)
    style: str = field(compare=False, default="info")  # a key of console.STYLES
    hints: list[str] = field(compare=False, default_factory=list)  # commands to type


def short(value: Any, limit: int = OUTPUT_TEXT) -> str:
    """A value as JSON on one line, cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Differ:
    """Turns successive snapshots of one run into the events between them."""

    def __init__(self, run_id: str, *, wave_progress: bool = True) -> None:
        self.run_id = run_id
        self.wave_progress = wave_progress  # log a running wave's counts (not in a terminal)
        self.seq = 0
        self.steps: dict[str, tuple[Any, ...]] = {}
        self.attempts_said: set[tuple[str, int]] = set()
        self.gate_rounds: dict[str, int] = {}
        self.gate_status: dict[str, str] = {}
        self.approvals_said: dict[str, int] = {}
        self.modifications_said: dict[str, int] = {}
        self.control_at = ""  # the time of the latest control said
        self.waves: dict[tuple[str, str], str] = {}
        self.wave_counts: dict[tuple[str, str], tuple[tuple[int, ...], datetime]] = {}
        self.items_said: set[tuple[str, str]] = set()
        self.published_said = False
        self.published_since: datetime | None = None
        self.closing_since: datetime | None = None
        self.closing_said = False
        self.locks_said: dict[tuple[Any, Any], tuple[bool, Any]] = {}

    def _event(
        self, at: str | None, subject: str, text: str, style: str = "info", rank: int = ENDED
    ) -> Event:
        self.seq += 1
        return Event(at or "", rank, self.seq, subject, text, style)

    def feed(self, snap: Snapshot, now: datetime | None = None) -> list[Event]:
        now = now or datetime.now(UTC)
        state = snap.view
        events: list[Event] = []
        if not snap.published:
            self.published_since = None
        elif self.published_since is None:
            self.published_since = now
        # A worker starting up (apply's own) takes a moment: say so only if it lasts.
        lasting = (
            self.published_since is not None
            and (now - self.published_since).total_seconds() >= NO_WORKER_SECONDS
        )
        if lasting and not self.published_said and not snap.closed:
            self.published_said = True
            why = state.published_because or "no worker answered"
            events.append(
                self._event(
                    state.published_at,
                    "run",
                    f"{why}; meanwhile, this is what the run last published",
                    "paused",
                )
            )
        for sid, step in state.steps.items():
            events += self._step(sid, step, snap, now)
            events += self._fanout(sid, step, now)
        for gate in state.gates:
            events += self._gate(gate, now)
        events += self._controls(state)
        events += self._locks(state, now)
        events += self._closing(snap, now)
        return sorted(events)

    def _locks(self, state: RunView, now: datetime) -> list[Event]:
        """A lock waited for (and whom for), then taken."""
        events = []
        for hold in state.locks:
            holder = (hold.holder or {}).get("run")
            key = (hold.step, hold.key)
            said = (hold.status == "held", holder)
            if self.locks_said.get(key) == said or hold.status == "requesting":
                continue
            self.locks_said[key] = said
            subject = hold.step or "run"
            if hold.status == "held":
                text, style = f"took lock {hold.key}", "started"
            else:
                text, style = lock_text(hold), "waiting"
            events.append(self._event(hold.since or _iso(now), subject, text, style))
        return events

    def _closing(self, snap: Snapshot, now: datetime) -> list[Event]:
        """A run that has ended but not closed waits for the run store: say so if it lasts."""
        state = snap.view
        ended = not state.running
        if snap.closed or not ended or not state.store_backlog:
            self.closing_since = None
            return []
        if self.closing_since is None:
            self.closing_since = now
        if self.closing_said or (now - self.closing_since).total_seconds() < STORE_WAIT_SECONDS:
            return []
        self.closing_said = True
        text = (
            f"the run has {state.status} and waits for the run store to record its last "
            f"{state.store_backlog} events before it closes; if this lasts, check that "
            "the store is reachable (QLRF_DATABASE_URL) and look at the worker's log"
        )
        return [self._event(_iso(now), "run", text, "paused")]

    # -- steps -------------------------------------------------------------------------

    def _step(self, sid: str, step: StepView, snap: Snapshot, now: datetime) -> list[Event]:
        events: list[Event] = []
        status = step.status
        # Attempts that failed before the last one: why each was retried.
        for failure in step.failed_attempts:
            number = failure.get("attempt")
            if not isinstance(number, int) or (sid, number) in self.attempts_said:
                continue
            self.attempts_said.add((sid, number))
            events.append(
                self._event(
                    failure.get("failed_at"),
                    sid,
                    f"attempt {number} failed: {error_text(failure)}; retried",
                    "retry",
                )
            )
        live = snap.attempts.get(sid)
        if status == "running" and live is not None and live.attempt > 1:
            failed = live.attempt - 1
            if (sid, failed) not in self.attempts_said:
                self.attempts_said.add((sid, failed))
                reason = live.last_failure or "no reason given"
                events.append(
                    self._event(
                        _iso(live.failed_at or now),
                        sid,
                        f"attempt {failed} failed: {reason}; {_retry(live, now)}",
                        "retry",
                    )
                )
        compensation = step.compensation or {}
        if status == StepStatus.WAITING and step.fanout is not None:
            status = StepStatus.RUNNING  # a campaign at a wave's gate has started all the same
            step = dataclasses.replace(step, status=status)
        key = (status, compensation.get("status"))
        if status in (StepStatus.PENDING, StepStatus.WAITING) or self.steps.get(sid) == key:
            return events
        before = self.steps.get(sid)
        self.steps[sid] = key
        if before is not None and before[0] == status:
            comp = str(compensation.get("status"))
            style = {"succeeded": "succeeded", "failed": "failed"}.get(comp, "running")
            detail = error_text(compensation.get("error"))
            events.append(
                self._event(
                    compensation.get("finished_at") or compensation.get("started_at"),
                    sid,
                    f"compensation {comp}" + (f": {detail}" if detail else ""),
                    style,
                )
            )
            return events
        events.append(self._step_event(sid, step))
        return events

    def _step_event(self, sid: str, step: StepView) -> Event:
        status = step.status
        attempts = step.attempts
        took = between(step.started_at, step.finished_at)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if status == StepStatus.RUNNING:
            return self._event(step.started_at, sid, "started", "started", STARTED)
        if status == StepStatus.SUCCEEDED:
            text = f"ok in {human_duration(took)}{tries}{_items(step)}"
            return self._event(step.finished_at, sid, text, "succeeded")
        if status == StepStatus.FAILED:
            failed = error_text(step.error)
            text = f"FAILED in {human_duration(took)}{tries}{_items(step)}: {failed}"
            return self._event(step.finished_at, sid, text, "failed")
        reason = f" ({step.reason})" if step.reason else ""
        at = step.finished_at or step.started_at
        return self._event(at, sid, f"{status}{reason}", str(status))

    # -- fan-outs ----------------------------------------------------------------------

    def _fanout(self, sid: str, step: StepView, now: datetime) -> list[Event]:
        if step.fanout is None:
            return []
        events: list[Event] = []
        for wave in step.fanout.waves:
            events += self._wave(sid, wave, now)
        for failed in step.fanout.failed_items:
            key = (sid, str(failed.get("item")))
            if key in self.items_said:
                continue
            self.items_said.add(key)
            events.append(
                self._event(
                    failed.get("at") or "",  # runs started before items kept their time
                    f"{sid} [{failed.get('item')}]",
                    f"failed: {error_text(failed.get('error'))}",
                    "failed",
                    ITEM_ENDED,
                )
            )
        return events

    def _wave(self, sid: str, wave: WaveJson, now: datetime) -> list[Event]:
        status = wave.get("status", "pending")
        name = wave.get("name", "?")
        subject = f"{sid}/{name}"
        key = (sid, name)
        if status == "pending":
            return []
        done = (wave.get("succeeded") or 0) + (wave.get("skipped") or 0)
        counts = (done, wave.get("failed") or 0, wave.get("running") or 0)
        size = wave.get("size") or 0
        if self.waves.get(key) == status:
            if not (self.wave_progress and status == "running"):
                return []
            seen = self.wave_counts.get(key)
            if seen is not None and (
                seen[0] == counts or (now - seen[1]).total_seconds() < WAVE_PROGRESS_SECONDS
            ):
                return []
            self.wave_counts[key] = (counts, now)
            text = f"{done + counts[1]}/{size} done, {counts[1]} failed, {counts[2]} running"
            return [self._event(_iso(now), subject, text, "running")]
        self.waves[key] = status
        self.wave_counts[key] = (counts, now)
        budget = wave.get("budget")
        allowed = f", failure budget {budget}" if budget is not None else ""
        if status == "running":
            text = f"wave started: {size} items{allowed}"
            at = wave.get("started_at") or _iso(now)
            return [self._event(at, subject, text, "started", WAVE_STARTED)]
        if status == "pausing":
            text = f"pausing before the wave, until {human_until(wave.get('until'), now)}"
            return [self._event(_iso(now), subject, text, "paused")]
        if status in ("waiting", "paused"):
            return []  # its gate, or the run's pause, says why
        if status == "not_started":
            text = f"not started: the campaign stopped before this wave of {size} items"
            at = wave.get("finished_at") or _iso(now)
            return [self._event(at, subject, text, "skipped", WAVE_ENDED)]
        took = between(wave.get("started_at"), wave.get("finished_at"))
        text = (
            f"wave {status}: {done}/{size} done, {counts[1]} failed"
            + (f" in {human_duration(took)}" if took is not None else "")
            + allowed
        )
        at = wave.get("finished_at") or _iso(now)
        return [self._event(at, subject, text, status, WAVE_ENDED)]

    # -- gates and controls ---------------------------------------------------------------

    def _gate(self, gate: GateView, now: datetime) -> list[Event]:
        name = gate.gate
        subject = f"gate {name}"
        events: list[Event] = []
        rounds = gate.round
        status = gate.status
        approvals = gate.approvals
        said_mods = self.modifications_said.get(name, 0)
        for change in _latest(gate.modifications, rounds, said_mods):
            changed = ", ".join(
                f"{k} {short(v.get('from'), 60)} -> {short(v.get('to'), 60)}"
                if isinstance(v, dict)
                else f"{k}={short(v, 60)}"
                for k, v in (change.get("changes") or {}).items()
            )
            events.append(
                self._event(
                    change.get("at"),
                    subject,
                    f"inputs modified by {change.get('by')}: {changed or 'no change'}"
                    + (f" ({change['comment']})" if change.get("comment") else "")
                    + "; the gate asks again",
                    "paused",
                )
            )
        self.modifications_said[name] = rounds
        if status == GateStatus.WAITING and self.gate_rounds.get(name) != rounds:
            self.gate_rounds[name] = rounds
            self.approvals_said[name] = 0
            who = ", ".join(gate.approvers) or "anyone"
            count = f"{len(approvals)}/{gate.min_approvals}"
            event = self._event(
                gate.waiting_since or _iso(now),
                subject,
                f"waits for {who} ({count} approvals), deadline "
                f"{human_until(gate.deadline, now)}: {gate.message}",
                "waiting",
                OPENED,
            )
            modifiable = gate.modifiable
            event.hints.append(
                f"qlrf-run approve {self.run_id} {name}   (or reject"
                + (f"; modify --set NAME=VALUE for {', '.join(modifiable)}" if modifiable else "")
                + ")"
            )
            events.append(event)
        said = self.approvals_said.get(name, 0)
        if len(approvals) > said and status == GateStatus.WAITING:
            for number, approval in enumerate(approvals[said:], start=said + 1):
                events.append(
                    self._event(
                        approval.get("at"),
                        subject,
                        f"approved by {approval.get('by')} ({number}/{gate.min_approvals})"
                        + (f": {approval['comment']}" if approval.get("comment") else ""),
                        "approved",
                        DECIDED,
                    )
                )
            self.approvals_said[name] = len(approvals)
        if status != GateStatus.WAITING and self.gate_status.get(name) != status:
            self.gate_status[name] = status
            events.append(self._decided(gate, status, now))
        return events

    def _decided(self, gate: GateView, status: str, now: datetime) -> Event:
        subject = f"gate {gate.gate}"
        if status == GateStatus.APPROVED:
            by = ", ".join(str(a.get("by")) for a in gate.approvals) or "?"
            last = gate.approvals[-1] if gate.approvals else None
            comment = f": {last['comment']}" if last and last.get("comment") else ""
            text = f"approved by {by}{comment}"
            return self._event(last["at"] if last else None, subject, text, "approved", DECIDED)
        if status == GateStatus.REJECTED:
            reject = next((d for d in reversed(gate.decisions) if d["decision"] == "reject"), None)
            comment = f": {reject['comment']}" if reject and reject.get("comment") else ""
            text = f"rejected by {reject['by'] if reject else '?'}{comment}"
            at = reject["at"] if reject else None
            return self._event(at, subject, text, "rejected", DECIDED)
        waited = between(gate.waiting_since, gate.deadline)
        text = f"{status.replace('_', ' ')}" + (
            f" after {human_duration(waited)} without a decision"
            if status == GateStatus.TIMED_OUT
            else ""
        )
        return self._event(gate.deadline or _iso(now), subject, text, status, DECIDED)

    def _controls(self, state: RunView) -> list[Event]:
        controls = state.controls
        events: list[Event] = []
        # The state keeps the latest few: count by their times, not their number.
        fresh = [c for c in controls if (c.get("at") or "") > self.control_at]
        for control in fresh:
            events.append(self._control(control))
        if fresh:
            self.control_at = max(c.get("at") or "" for c in fresh)
        return events

    def _control(self, control: ControlJson) -> Event:
        action, by = control.get("action"), control.get("by")
        why = f" ({control['comment']})" if control.get("comment") else ""
        if action == "pause":
            text, style = f"paused by {by}{why}: nothing new starts until resume", "paused"
            event = self._event(control.get("at"), "run", text, style)
            event.hints.append(f"qlrf-run resume {self.run_id}")
            return event
        if action == "resume":
            return self._event(control.get("at"), "run", f"resumed by {by}{why}", "started")
        if action == "concurrency":
            text = f"now {control.get('concurrency')} items at once, set by {by}{why}"
            return self._event(control.get("at"), str(control.get("step")), text, "info")
        items = ", ".join(str(i) for i in control.get("items") or [])
        text = f"leaves out {items}, by {by}{why}"
        return self._event(control.get("at"), str(control.get("step")), text, "skipped")


def _items(step: StepView) -> str:
    """`, 3 items succeeded, 1 failed` for a fan-out step that ended."""
    output = step.output
    if step.fanout is None or not isinstance(output, dict) or "succeeded" not in output:
        return ""
    failed = output.get("failed") or 0
    text = f", {output['succeeded']} items succeeded"
    if failed:
        text += f", {failed} failed"
    if output.get("not_started"):
        text += f", {output['not_started']} not started"
    return text


def _retry(live: Attempt, now: datetime) -> str:
    if not live.waiting_to_retry:
        return f"attempt {live.attempt} runs"
    if live.next_attempt_at is None:
        return "retrying"
    left = (live.next_attempt_at - now).total_seconds()
    return f"retrying in {human_duration(left)}" if left > 0.05 else "retrying now"


def _latest(entries: list[ModificationJson], total: int, said: int) -> list[ModificationJson]:
    """Of the last len(entries) of `total` entries, those after the first `said`."""
    first = total - len(entries)
    return entries[max(0, said - first) :]


def _iso(moment: datetime) -> str:
    return iso(moment) or ""


def lock_text(hold: LockView) -> str:
    """`waiting for lock K (held by run R since T)`, or `holds lock K`."""
    if hold.status == "held":
        return f"holds lock {hold.key}"
    return lock_wait_text(hold.key, hold.holder)
