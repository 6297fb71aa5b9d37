"""What `simulate` makes of a run's recorded rows: mocks that replay each attempt, and
decisions as long after their gate opened as they came."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runner.testing.simulate import Recording, decisions_of, mocks_of

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _step(step, status, attempt=None, item=None, output=None, error=None):
    return {
        "step": step,
        "item": item,
        "attempt": attempt,
        "status": status,
        "output": output,
        "error": error,
    }


def test_attempts_replay_in_order_and_items_keep_their_own():
    rows: list[dict[str, Any]] = [
        _step("flaky", "started"),
        _step("flaky", "failed", 1, error={"type": "HttpStatus", "message": "503"}),
        _step("flaky", "failed", 2, error={"type": "Timeout", "message": "slow"}),
        _step("flaky", "succeeded", 3, output={"status": 200}),
        _step("dead", "failed", 1, error={"type": "CommandFailed", "message": "no"}),
        _step("patch", "succeeded", 1, item="a", output={"stdout": "ok"}),
        _step("patch", "failed", 1, item="b", error={"type": "CommandFailed", "message": "x"}),
        _step("up", "succeeded", 1, output={}),
        _step("up", "compensation_started", 1),
        _step("up", "compensation_failed", 1, error={"type": "CommandFailed", "message": "x"}),
    ]
    mocks = mocks_of(Recording({}, rows, []))
    flaky = mocks["flaky"].outcome
    assert flaky is not None
    answers = [flaky.at(n) for n in (1, 2, 3, 4)]
    assert [f.type if f else o for o, f in answers] == [
        "HttpStatus",
        "Timeout",
        {"status": 200},
        {"status": 200},
    ]
    dead = mocks["dead"].outcome
    assert dead is not None and all(dead.at(n)[1] is not None for n in (1, 2, 5))
    patch = mocks["patch"]
    a, b = patch.for_item("a"), patch.for_item("b")
    assert a is not None and b is not None
    assert a.at(1) == ({"stdout": "ok"}, None)
    failure = b.at(3)[1]
    assert failure is not None and failure.type == "CommandFailed"
    compensate = mocks["up"].compensate
    assert compensate is not None and compensate.at(1)[1] is not None


def test_decisions_come_as_long_after_their_gate_opened():
    audit: list[dict[str, Any]] = [
        {"action": "gate_opened", "actor": None, "at": T0, "detail": {"gate": "review"}},
        {
            "action": "gate_decided",
            "actor": "bob",
            "at": T0 + timedelta(hours=3),
            "detail": {
                "gate": "review",
                "decision": "modify",
                "comment": "",
                "changes": {"size": {"from": 1, "to": 2}},
            },
        },
        {
            "action": "gate_decided",
            "actor": "alice",
            "at": T0 + timedelta(hours=4),
            "detail": {"gate": "review", "decision": "approve", "comment": "ok"},
        },
    ]
    modify, approve = decisions_of(Recording({}, [], audit))
    assert (modify.by, modify.decision, modify.after_ms, modify.set) == (
        "bob",
        "modify",
        3 * 3600 * 1000,
        {"size": 2},
    )
    assert (approve.by, approve.decision, approve.after_ms) == ("alice", "approve", 4 * 3600 * 1000)
