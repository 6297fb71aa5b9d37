"""Runbooks on a timetable, on Temporal Schedules.

A schedule pins the compiled plan and inputs as they were at `create` or `update`:
editing the file later changes nothing until `schedule update`. The server starts
its runs as `qlrf.Runbook` with `started_by: schedule:<ID>`; they carry the
runbook's name and kind like any run, and Temporal marks them with the schedule's
id (the TemporalScheduledById search attribute), which `list` shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from runner.client import signing
from runner.client.runs import first_picture, run_attributes, run_request
from runner.contract import LIVE_MEMO, WORKFLOW_TYPE
from runner.contract.messages import Inputs
from runner.errors import QlrfError, UsageError
from runner.plan.model import Plan
from runner.times import iso
from runner.trust import claims

OVERLAPS = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
SCHEDULE_MEMO = "qlrf"  # who made the schedule, from which file
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
# Five fields (minute hour day-of-month month day-of-week), or a macro (@daily).
CRON_FIELDS = 5


@dataclass(frozen=True)
class Timetable:
    cron: str | None = None
    every: timedelta | None = None

    def spec(self) -> ScheduleSpec:
        if self.cron is not None:
            return ScheduleSpec(cron_expressions=[self.cron])
        assert self.every is not None
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=self.every)])

    def text(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron}"
        assert self.every is not None
        return f"every {_duration(self.every)}"


def timetable(cron: str | None, every_ms: int | None) -> Timetable:
    """Exactly one of --cron and --every; UsageError naming what is wrong."""
    if (cron is None) == (every_ms is None):
        raise UsageError("give exactly one of --cron EXPR and --every DURATION")
    if cron is not None:
        expr = cron.strip()
        fields = expr.split()
        if not expr.startswith("@") and len(fields) != CRON_FIELDS:
            raise UsageError(
                f"--cron {cron!r}: a cron expression has 5 fields (minute hour day-of-month "
                "month day-of-week), e.g. '0 3 * * *' for 03:00 every day, or is a macro "
                "such as @daily"
            )
        return Timetable(cron=expr)
    assert every_ms is not None
    if every_ms < 1000:
        raise UsageError("--every must be at least 1s, e.g. --every 15m")
    return Timetable(every=timedelta(milliseconds=every_ms))


def checked_id(schedule_id: str) -> str:
    if not ID_PATTERN.match(schedule_id):
        raise UsageError(
            f"schedule id {schedule_id!r}: use letters, digits, '.', '_' and '-' (at most 200), "
            "starting with a letter or digit"
        )
    return schedule_id


def _action(
    schedule_id: str, plan: Plan, inputs: Inputs, queue: str, **definition: Any
) -> ScheduleActionStartWorkflow:
    started_by = f"schedule:{schedule_id}"
    request = run_request(plan, inputs, started_by, **definition)
    if signing.wanted_here():
        # Signed mode: the person creating or updating the schedule signs for every
        # run it starts (docs/trust.md).
        claim = claims.schedule_claim(schedule_id, plan.plan_hash, inputs)
        request.proof = {**signing.sign(claim), "schedule": schedule_id}
    return ScheduleActionStartWorkflow(
        WORKFLOW_TYPE,
        request,
        # The server appends the time of each run to this id.
        id=f"{plan.name}-{schedule_id}",
        task_queue=queue,
        typed_search_attributes=run_attributes(plan),
        memo={LIVE_MEMO: first_picture(plan, started_by)},
        static_summary=f"{plan.kind} {plan.name} (schedule {schedule_id})",
    )


def _memo(plan: Plan, created_by: str, definition: dict[str, Any]) -> dict[str, Any]:
    return {
        SCHEDULE_MEMO: {
            "name": plan.name,
            "kind": plan.kind,
            "plan_hash": plan.plan_hash,
            "by": created_by,
            "definition_file": definition.get("definition_file", ""),
            "definition_sha256": definition.get("definition_sha256", ""),
        }
    }


async def create(
    client: Client,
    schedule_id: str,
    plan: Plan,
    inputs: Inputs,
    when: Timetable,
    overlap: str,
    created_by: str,
    queue: str,
    **definition: Any,
) -> ScheduleHandle:
    schedule = Schedule(
        action=_action(schedule_id, plan, inputs, queue, **definition),
        spec=when.spec(),
        policy=SchedulePolicy(overlap=OVERLAPS[overlap]),
        state=ScheduleState(note=f"created by {created_by} with qlrf-run"),
    )
    try:
        return await client.create_schedule(
            checked_id(schedule_id), schedule, memo=_memo(plan, created_by, definition)
        )
    except ScheduleAlreadyRunningError:
        raise QlrfError(
            f"schedule {schedule_id!r} already exists; change it with "
            f"`qlrf-run schedule update {schedule_id} FILE`, or pick another --id"
        ) from None
    except RPCError as exc:
        raise QlrfError(f"the server refused schedule {schedule_id!r}: {exc.message}") from None


async def update(
    client: Client,
    schedule_id: str,
    plan: Plan,
    inputs: Inputs,
    queue: str,
    when: Timetable | None,
    **definition: Any,
) -> None:
    """Pin a new definition (and, if given, a new timetable); the rest is kept."""
    action = _action(schedule_id, plan, inputs, queue, **definition)

    def change(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = current.description.schedule
        schedule.action = action
        if when is not None:
            schedule.spec = when.spec()
        return ScheduleUpdate(schedule=schedule)

    await _call(handle(client, schedule_id).update(change), schedule_id)


def handle(client: Client, schedule_id: str) -> ScheduleHandle:
    return client.get_schedule_handle(checked_id(schedule_id))


async def _call(awaitable: Any, schedule_id: str) -> Any:
    try:
        return await awaitable
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise QlrfError(
                f"no schedule {schedule_id!r}; `qlrf-run schedule list` shows them"
            ) from None
        raise QlrfError(f"schedule {schedule_id!r}: {exc.message}") from None


async def describe(client: Client, schedule_id: str) -> dict[str, Any]:
    found = await _call(handle(client, schedule_id).describe(), schedule_id)
    schedule, info = found.schedule, found.info
    action = schedule.action
    request = action.args[0] if isinstance(action, ScheduleActionStartWorkflow) else None
    plan = _decoded(client, request)
    made = (await found.memo_value(SCHEDULE_MEMO, default={})) or {}
    pinned = plan or {}  # what the schedule runs now (the memo says what it was made with)
    return {
        "id": found.id,
        "name": pinned.get("name") or made.get("name"),
        "kind": pinned.get("kind") or made.get("kind"),
        "when": _when(schedule.spec),
        "overlap": _overlap(schedule.policy.overlap),
        "paused": schedule.state.paused,
        "note": schedule.state.note,
        "created_by": made.get("by"),
        "definition_file": pinned.get("definition_file") or made.get("definition_file"),
        "plan_hash": pinned.get("plan_hash") or made.get("plan_hash"),
        "inputs": pinned.get("inputs"),
        "runs": info.num_actions,
        # A paused schedule starts nothing: it has no next times to show.
        "next": [] if schedule.state.paused else [iso(t) for t in info.next_action_times[:3]],
        "recent": [
            {
                "run_id": a.action.workflow_id,
                "scheduled_at": iso(a.scheduled_at),
                "started_at": iso(a.started_at),
            }
            for a in info.recent_actions[-5:]
            if hasattr(a.action, "workflow_id")
        ],
    }


def _decoded(client: Client, request: Any) -> dict[str, Any] | None:
    """The run input a schedule pins: a RunInput-shaped mapping, decoded from JSON."""
    if request is None:
        return None
    if not isinstance(request, dict):
        try:
            [request] = client.data_converter.payload_converter.from_payloads([request])
        except Exception:
            return None
    if not isinstance(request, dict):
        return None
    plan = request.get("plan") or {}
    return {
        "name": plan.get("name"),
        "kind": plan.get("kind"),
        "plan_hash": plan.get("plan_hash"),
        "inputs": request.get("inputs"),
        "definition_file": request.get("definition_file"),
    }


def _when(spec: ScheduleSpec) -> str:
    if spec.cron_expressions:
        return "cron " + " | ".join(spec.cron_expressions)
    if spec.intervals:
        return "every " + ", ".join(_duration(i.every) for i in spec.intervals)
    if spec.calendars:  # the server keeps a cron expression as calendar ranges
        return "cron " + " | ".join(_cron(c) for c in spec.calendars)
    return "-"


# A calendar's fields in cron's order, with the whole range each field covers.
CRON_ORDER = (("minute", 0, 59), ("hour", 0, 23), ("day_of_month", 1, 31), ("month", 1, 12))


def _cron(calendar: Any) -> str:
    """A calendar spec written back as the five-field cron expression it came from."""
    fields = [_field(getattr(calendar, name), low, high) for name, low, high in CRON_ORDER]
    fields.append(_field(calendar.day_of_week, 0, 6))
    return " ".join(fields)


def _field(ranges: Any, low: int, high: int) -> str:
    if not ranges:
        return "*"
    parts = []
    for r in ranges:
        end = r.end if r.end >= r.start else r.start
        if r.start == low and end == high:
            text = "*"
        elif end == r.start:
            text = str(r.start)
        else:
            text = f"{r.start}-{end}"
        parts.append(text + (f"/{r.step}" if r.step > 1 else ""))
    return ",".join(parts)


def _duration(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _overlap(policy: ScheduleOverlapPolicy) -> str:
    for name, value in OVERLAPS.items():
        if value == policy:
            return name
    return policy.name.lower()


async def listing(client: Client) -> list[dict[str, Any]]:
    rows = []
    async for found in await client.list_schedules():
        made = (await found.memo_value(SCHEDULE_MEMO, default={})) or {}
        schedule = found.schedule
        info = found.info
        rows.append(
            {
                "id": found.id,
                "name": made.get("name"),
                "kind": made.get("kind"),
                "when": _when(schedule.spec) if schedule else "-",
                "paused": bool(schedule and schedule.state.paused),
                "next": iso(info.next_action_times[0])
                if info and info.next_action_times and not (schedule and schedule.state.paused)
                else None,
            }
        )
    return sorted(rows, key=lambda r: r["id"])


async def pause(client: Client, schedule_id: str, note: str) -> str | None:
    """Pause it with `note`; a schedule already paused keeps its note, which is
    returned (None when this call paused it)."""
    return await _set_paused(client, schedule_id, True, note)


async def unpause(client: Client, schedule_id: str, note: str) -> str | None:
    return await _set_paused(client, schedule_id, False, note)


async def _set_paused(client: Client, schedule_id: str, paused: bool, note: str) -> str | None:
    found = handle(client, schedule_id)
    state = (await _call(found.describe(), schedule_id)).schedule.state
    if state.paused == paused:
        return state.note or ""
    await _call(found.pause(note=note) if paused else found.unpause(note=note), schedule_id)
    return None


async def trigger(client: Client, schedule_id: str) -> None:
    await _call(handle(client, schedule_id).trigger(), schedule_id)


async def delete(client: Client, schedule_id: str) -> None:
    await _call(handle(client, schedule_id).delete(), schedule_id)
