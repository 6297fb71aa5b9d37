"""The policy file's errors, its change windows in their zones, and the wave check,
one function at a time (the run's enforcement is tests/integration/test_governance.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.dsl import policy_config
from runner.engine.failures import StepFailed
from runner.engine.governance import Governance
from runner.plan.model import Plan
from runner.trust import policy

GROUPS = {"sre": ["bob"], "directors": ["dora"]}


def _load(tmp_path: Path, text: str) -> dict[str, Any] | None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return policy_config.load(GROUPS, str(path))


def test_a_good_policy_reads_with_its_digest(tmp_path):
    found = _load(tmp_path, "rules:\n  - match: {kind: Drill}\n    start: ['group:sre']\n")
    assert found is not None and len(found["sha256"]) == 64
    assert found["rules"][0]["start"] == ["group:sre"]


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("rules:\n  - match: {kind: Drill}\n    start: ['group:ops']\n", ":3:", "group 'ops'"),
        (
            "rules:\n  - match: {}\n    windows:\n      allow: ['Mon-Fri 8-18 Berlin']\n",
            ":4:",
            "is not a window",
        ),
        (
            "rules:\n  - match: {}\n    windows:\n      allow: ['Mon-Fri 08:00-18:00 Mars/Base']\n",
            ":4:",
            "is not a time zone",
        ),
        (
            "rules:\n  - match: {}\n    windows:\n      freeze: ['2027-01-04/2026-12-20']\n",
            ":4:",
            "ends before it begins",
        ),
        (
            "proposals:\n  principals: [agent]\n  forbid: ['rm (']\n"
            "  gate: {approvers: ['group:sre']}\n",
            ":3:",
            "is not a regular expression",
        ),
        ("rules:\n  - match: {kind: Drill}\n    strat: [bob]\n", ":3:", "strat"),
    ],
)
def test_a_bad_policy_names_its_line(tmp_path, text, where, words):
    with pytest.raises(policy_config.PolicyConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert "QLRF_POLICY" in message and f"policy.yaml{where}" in message and words in message


def test_windows_keep_their_zone_and_run_past_midnight():
    berlin = policy.allow_window("Mon-Fri 08:00-18:00 Europe/Berlin")
    # 07:30 UTC on a winter Monday is 08:30 in Berlin; 17:30 UTC is 18:30 there.
    assert berlin.holds(datetime(2026, 12, 7, 7, 30, tzinfo=UTC))
    assert not berlin.holds(datetime(2026, 12, 7, 17, 30, tzinfo=UTC))
    assert not berlin.holds(datetime(2026, 12, 12, 10, 0, tzinfo=UTC))  # a Saturday
    night = policy.allow_window("Fri 22:00-02:00 UTC")
    assert night.holds(datetime(2026, 12, 11, 23, 0, tzinfo=UTC))
    assert night.holds(datetime(2026, 12, 12, 1, 59, tzinfo=UTC))  # Saturday morning
    assert not night.holds(datetime(2026, 12, 12, 2, 0, tzinfo=UTC))
    freeze = policy.freeze_window("2026-12-20/2027-01-04 Europe/Berlin")
    assert freeze.holds(datetime(2026, 12, 19, 23, 30, tzinfo=UTC))  # 00:30 on the 20th
    assert not freeze.holds(datetime(2027, 1, 4, 23, 30, tzinfo=UTC))


def _governance(windows: dict[str, Any]) -> Governance:
    data = {"sha256": "x", "rules": [{"match": {"kind": "Task"}, "windows": windows}]}
    plan = Plan.from_dict({"name": "t", "kind": "Task"})
    return Governance.of(data, plan, None, "bob", GROUPS)


def test_a_wave_outside_the_windows_waits_for_break_glass_once():
    gov = _governance(
        {
            "allow": ["Mon-Fri 08:00-18:00 UTC"],
            "break_glass": {"approvers": ["group:directors"], "min_approvals": 1},
        }
    )
    opened: list[str] = []

    async def approve(node: Any, params: dict[str, Any], gate: str) -> Any:
        opened.append(gate)
        assert params["approvers"] == ["group:directors"]
        return {"decision": "approved"}

    inside = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    outside = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
    assert asyncio.run(gov.gates(approve, inside, "patch/canary")) is None
    assert opened == []
    assert asyncio.run(gov.gates(approve, outside, "patch/fleet")) is None
    assert opened == ["policy:break-glass/patch/fleet"]
    # The emergency covers the rest of the run: the next wave does not ask again.
    assert asyncio.run(gov.gates(approve, outside, "patch/rest")) is None
    assert opened == ["policy:break-glass/patch/fleet"]


def test_a_rejected_break_glass_or_none_stops_the_wave():
    async def reject(node: Any, params: dict[str, Any], gate: str) -> Any:
        raise StepFailed("ApprovalRejected", f"gate '{gate}' was rejected by dora", 1)

    outside = datetime(2026, 12, 12, 10, 0, tzinfo=UTC)
    gov = _governance(
        {"allow": ["Mon-Fri 08:00-18:00 UTC"], "break_glass": {"approvers": ["dora"]}}
    )
    assert asyncio.run(gov.gates(reject, outside, "patch/fleet")) == (
        "gate 'policy:break-glass/patch/fleet' was rejected by dora"
    )
    refused = asyncio.run(
        _governance({"allow": ["Mon-Fri 08:00-18:00 UTC"]}).gates(reject, outside, "patch/fleet")
    )
    assert refused is not None and "patch/fleet is outside the change windows" in refused
    assert "policy rule 0 (kind: Task)" in refused and "has no break_glass" in refused
