"""Live progress as events: the order things happened, each said once, in human terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runner.cli.events import Differ
from runner.client.state import Attempt, Snapshot
from runner.contract.state import RunView
from runner.times import human_duration, human_until

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    moment = T0 + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def step(status: str, start: float | None = None, end: float | None = None, **more) -> dict:
    return {
        "status": status,
        "attempts": more.pop("attempts", 1 if start is not None else 0),
        "started_at": at(start) if start is not None else None,
        "finished_at": at(end) if end is not None else None,
        "output": None,
        "error": None,
        **more,
    }


def gate(status: str = "waiting", **more) -> dict:
    return {
        "gate": "review",
        "status": status,
        "message": "ship it?",
        "approvers": ["alice"],
        "min_approvals": 1,
        "approvals": [],
        "decisions": [],
        "modifications": [],
        "modifiable": [],
        "round": 0,
        "waiting_since": at(2),
        "deadline": at(2 + 3600),
        **more,
    }


def snap(steps: dict, gates: list | None = None, **more) -> Snapshot:
    state = {"run_id": "r", "steps": steps, "gates": gates or [], "controls": [], **more}
    return Snapshot(RunView.from_json(state), closed=False, attempts=more.pop("attempts", {}))


def texts(events) -> list[str]:
    return [f"{e.subject}: {e.text}" for e in events]


def test_events_of_one_look_come_in_the_order_they_happened():
    """The state lists `deploy` before `build`; the events put build's end first, then
    the gate it opened, whatever the order of the mapping."""
    differ = Differ("r")
    found = differ.feed(
        snap(
            {
                "deploy": step("running", 2),
                "build": step("succeeded", 0, 2),
                "review": step("waiting", 2),
            },
            [gate()],
        ),
        now=T0 + timedelta(seconds=3),
    )
    assert texts(found) == [
        "build: ok in 2.0s",
        "deploy: started",
        "gate review: waits for alice (0/1 approvals), deadline in 59m 59s (11:00 UTC): ship it?",
    ]
    assert found[-1].hints == ["qlrf-run approve r review   (or reject)"]


def test_each_thing_is_said_once_and_a_decision_names_who():
    differ = Differ("r")
    now = T0 + timedelta(seconds=3)
    waiting = snap({"review": step("waiting", 2)}, [gate()])
    assert len(differ.feed(waiting, now=now)) == 1
    assert differ.feed(waiting, now=now) == []  # nothing new: nothing said
    approval = {"by": "alice", "at": at(5), "comment": "looks fine"}
    decided = snap(
        {"review": step("succeeded", 2, 5)},
        [gate("approved", approvals=[approval], decisions=[{**approval, "decision": "approve"}])],
    )
    assert texts(differ.feed(decided, now=now)) == [
        "gate review: approved by alice: looks fine",
        "review: ok in 3.0s",
    ]


def test_a_failed_attempt_is_shown_with_its_reason_and_the_retry():
    """While the step waits to retry, the reason and the wait; at its end, the attempts
    it took (and a failure not seen live is still told)."""
    differ = Differ("r")
    live = Attempt(
        attempt=2,
        waiting_to_retry=True,
        last_failure="CommandFailed: exit code 1: app still warming up",
        next_attempt_at=T0 + timedelta(seconds=4),
        failed_at=T0 + timedelta(seconds=1),
        heartbeat=None,
    )
    running = Snapshot(
        RunView.from_json(
            {"run_id": "r", "steps": {"check": step("running", 0)}, "gates": [], "controls": []}
        ),
        closed=False,
        attempts={"check": live},
    )
    found = texts(differ.feed(running, now=T0 + timedelta(seconds=3)))
    assert found == [
        "check: started",
        "check: attempt 1 failed: CommandFailed: exit code 1: app still warming up; "
        "retrying in 1.0s",
    ]
    failures = [
        {"attempt": 1, "type": "CommandFailed", "message": "x", "failed_at": at(1)},
        {"attempt": 2, "type": "CommandFailed", "message": "still warming", "failed_at": at(5)},
    ]
    done = snap({"check": step("succeeded", 0, 6, attempts=3, failed_attempts=failures)})
    assert texts(differ.feed(done, now=T0 + timedelta(seconds=7))) == [
        "check: attempt 2 failed: CommandFailed: still warming; retried",
        "check: ok in 6.0s after 3 attempts",
    ]


def test_failed_items_are_named_before_their_wave_and_step_end():
    differ = Differ("r")
    wave = {"name": "all", "size": 3, "status": "succeeded", "succeeded": 2, "failed": 1}
    wave.update(skipped=0, running=0, budget=1, started_at=at(1), finished_at=at(4))
    fanout = {
        "total": 3,
        "waves": [wave],
        "failed_items": [
            {"item": "web-3", "error": {"type": "CommandFailed", "message": "disk full"}}
        ],
    }
    output = {"succeeded": 2, "failed": 1, "not_started": 0, "items": []}
    found = texts(
        differ.feed(
            snap({"fleet": step("succeeded", 1, 4, fanout=fanout, output=output)}),
            now=T0 + timedelta(seconds=5),
        )
    )
    assert found[0] == "fleet [web-3]: failed: CommandFailed: disk full"
    assert found[1].startswith("fleet/all: wave succeeded: 2/3 done, 1 failed in 3.0s")
    assert found[2] == "fleet: ok in 3.0s, 2 items succeeded, 1 failed"


def test_no_worker_is_said_only_when_it_lasts():
    """apply's own worker takes a moment to start: the notice waits a few seconds."""
    differ = Differ("r")
    published = Snapshot(
        RunView.from_json(
            {
                "run_id": "r",
                "steps": {},
                "gates": [],
                "controls": [],
                "published_because": "no worker is polling task queue q",
            }
        ),
        closed=False,
        published=True,
    )
    assert differ.feed(published, now=T0) == []
    [notice] = differ.feed(published, now=T0 + timedelta(seconds=4))
    assert "no worker is polling task queue q" in notice.text
    assert differ.feed(published, now=T0 + timedelta(seconds=9)) == []


def test_durations_and_deadlines_read_as_people_say_them():
    assert [human_duration(s) for s in (0.04, 2.5, 12, 245, 7800, 200000)] == [
        "0.0s",
        "2.5s",
        "12s",
        "4m 05s",
        "2h 10m",
        "2d 7h",
    ]
    assert human_until(at(90), now=T0) == "in 1m 30s (10:01 UTC)"
    assert human_until(at(-30), now=T0) == "30s ago (09:59 UTC)"
    # Less than a day ahead but tomorrow: the date is said.
    late = T0.replace(hour=23, minute=0)
    assert human_until((late + timedelta(hours=10)).isoformat(), now=late) == (
        f"in 10h 00m ({(late + timedelta(hours=10)).strftime('%Y-%m-%d')} 09:00 UTC)"
    )
    assert human_until(at(3 * 86400), now=T0) == "in 3d 0h (2026-12-04 10:00 UTC)"


def test_a_run_waiting_for_the_store_says_so_once_it_lasts():
    """A run that ended but cannot close because the store is down does not hang silently."""
    differ = Differ("r")
    waiting = Snapshot(
        RunView.from_json(
            {
                "run_id": "r",
                "status": "succeeded",
                "steps": {},
                "gates": [],
                "controls": [],
                "store_backlog": 4,
            }
        ),
        closed=False,
    )
    assert differ.feed(waiting, now=T0) == []
    [notice] = differ.feed(waiting, now=T0 + timedelta(seconds=11))
    assert "waits for the run store to record its last 4 events" in notice.text
    assert "QLRF_DATABASE_URL" in notice.text
    assert differ.feed(waiting, now=T0 + timedelta(seconds=30)) == []


def hold(status: str, holder: str | None = None, step_id: str | None = None) -> dict:
    return {
        "key": "db:prod-1",
        "step": step_id,
        "status": status,
        "since": at(1),
        "holder": {"run": holder, "step": None, "since": at(0)} if holder else None,
        "position": 1 if status == "waiting" else None,
    }


def test_a_lock_wait_is_said_with_its_holder_and_again_when_the_holder_changes():
    differ = Differ("r")
    steps = {"work": step("pending")}
    assert texts(differ.feed(snap(steps, locks=[hold("requesting")]))) == []
    first = texts(differ.feed(snap(steps, locks=[hold("waiting", "run-a")])))
    assert first == [f"run: waiting for lock db:prod-1 (held by run run-a since {at(0)})"]
    assert texts(differ.feed(snap(steps, locks=[hold("waiting", "run-a")]))) == []
    second = texts(differ.feed(snap(steps, locks=[hold("waiting", "run-b")])))
    assert second == [f"run: waiting for lock db:prod-1 (held by run run-b since {at(0)})"]
    assert texts(differ.feed(snap(steps, locks=[hold("held")]))) == ["run: took lock db:prod-1"]


def test_a_step_waiting_for_its_lock_is_named_as_the_subject():
    differ = Differ("r")
    steps = {"work": step("waiting")}
    said = texts(differ.feed(snap(steps, locks=[hold("waiting", "run-a", "work")])))
    assert said == [f"work: waiting for lock db:prod-1 (held by run run-a since {at(0)})"]
