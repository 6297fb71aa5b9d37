"""`qlrf-run test`, tested: a runbook and its cases on the time-skipping server, the
mutants each case must catch, simulated time, fan-out items, a child runbook,
controls, JUnit, coverage, and a bad test file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT, qlrf

pytestmark = pytest.mark.timeout(300)

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Drill
name: tester-drill
inputs:
  hosts: {type: array, default: [web-1, web-2, web-3, web-4]}
defaults:
  timeout: 5m
steps:
  - id: provision
    type: shell
    with: {command: [echo, up]}
    retry: {max_attempts: 4, initial_interval: 10m, max_interval: 10m}
    compensate: {type: shell, with: {command: [echo, down]}}
  - id: failover
    type: shell
    needs: [provision]
    with: {command: [echo, over], parse: json}
    retry: {max_attempts: 3, initial_interval: 10m, max_interval: 10m}
    compensate: {type: shell, with: {command: [echo, back]}}
  - id: cleanup
    type: shell
    needs: [failover]
    trigger_rule: one_failed
    with: {command: [echo, cleanup]}
  - id: review
    type: approval
    needs: [failover]
    with: {message: go?, approvers: [bob], timeout: 24h}
  - id: patch
    type: shell
    needs: [review]
    foreach: "{{ inputs.hosts }}"
    as: host
    max_failures: 1
    with: {command: [echo, "{{ host }}"]}
  - id: validate
    type: runbook
    needs: [patch]
    with: {file: child.yaml}
outputs:
  rto_seconds: "{{ steps.failover.output.json.rto }}"
  healthy: "{{ steps.validate.output.healthy }}"
"""

CHILD = """\
apiVersion: qlrf/v1
kind: Runbook
name: tester-child
steps:
  - {id: smoke, type: http, with: {url: "https://example.com/health"}}
outputs:
  healthy: "{{ steps.smoke.output.status == 200 }}"
"""

TESTS = """\
apiVersion: qlrf/v1
kind: Test
runbook: drill.yaml
x-mocks: &mocks
  provision: {fail: {type: CommandFailed, message: "no capacity"}, times: 2, then: {output: {}}}
  failover: {output: {json: {rto: 12}}}
  cleanup: {output: {}}
  patch: {default: {output: {}}}
  validate.smoke: {output: {status: 200}}
cases:
  - name: happy path
    mocks: *mocks
    decisions: [{gate: review, after: 3h, by: bob, decision: approve}]
    expect:
      status: succeeded
      steps:
        provision: {status: succeeded, attempts: 3}
        validate.smoke: succeeded
      compensated: []
      outputs: {rto_seconds: {lt: 60}, healthy: true}
      audit: [{event: gate_decided, actor: bob, gate: review}]

  - name: failover fails
    mocks:
      <<: *mocks
      failover: {fail: {type: CommandFailed, message: "timeout"}}
    expect:
      status: failed
      steps:
        failover: {status: failed, attempts: 3, error: CommandFailed}
        cleanup: succeeded
        review: skipped
      compensated: [provision]

  - name: gate times out
    mocks: *mocks
    expect:
      status: failed
      steps: {review: {status: failed, error: ApprovalRejected}, patch: skipped}
      compensated: [failover, provision]

  - name: one host fails within the budget
    mocks:
      <<: *mocks
      patch: {items: {web-3: {fail: {type: CommandFailed}}}, default: {output: {}}}
    decisions: [{gate: review, by: bob, decision: approve}]
    expect:
      status: succeeded
      steps: {patch: {status: succeeded, items: {web-3: failed, web-4: succeeded}}}

  - name: two hosts fail over the budget
    mocks:
      <<: *mocks
      patch:
        items: {web-2: {fail: {type: CommandFailed}}, web-3: {fail: {type: CommandFailed}}}
        default: {output: {}}
    decisions: [{gate: review, by: bob, decision: approve}]
    expect:
      status: failed
      steps: {patch: {status: failed, error: FailureBudgetExceeded}, validate: skipped}
      compensated: [failover, provision]
      outputs: {rto_seconds: 12}  # healthy never rendered: the child never ran

  - name: cancelled while the gate waits
    mocks: *mocks
    controls: [{action: cancel, at: 2h, by: carol}]
    expect:
      status: cancelled
      compensated: [failover, provision]
      audit: [{event: gate_opened, gate: review}, {event: cancel_requested, actor: carol}]
"""
CASES = 6


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "drill.yaml").write_text(RUNBOOK)
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "drill.test.yaml").write_text(TESTS)
    return tmp_path


def _run(*args: str) -> tuple[int, dict]:
    done = qlrf("test", *args, "--format", "json")
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def _case(report: dict, name: str) -> dict:
    return next(c for c in report["cases"] if c["name"] == name)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_runbook_and_its_cases_pass_in_simulated_time(suite):
    """Every case passes; retries with 10m back-off and a 3h wait at the gate pass in
    simulated time: the run's own clock shows them."""
    code, report = _run(str(suite / "drill.test.yaml"), "--coverage")
    assert code == 0, json.dumps([c for c in report["cases"] if not c["passed"]], indent=1)
    assert report["passed"] == CASES and report["failed"] == 0
    happy = _case(report, "happy path")["actual"]
    provision = happy["steps"]["provision"]
    # Two failed attempts, each followed by 10 minutes of back-off.
    assert _at(provision["finished_at"]) - _at(provision["started_at"]) >= timedelta(minutes=20)
    review = happy["steps"]["review"]
    waited = _at(review["finished_at"]) - _at(review["started_at"])
    assert timedelta(hours=3) <= waited < timedelta(hours=3, minutes=1)
    timed_out = _case(report, "gate times out")["actual"]["steps"]["review"]
    assert _at(timed_out["finished_at"]) - _at(timed_out["started_at"]) >= timedelta(hours=24)
    cancelled = _case(report, "cancelled while the gate waits")["actual"]
    assert _at(cancelled["finished_at"]) - _at(cancelled["started_at"]) >= timedelta(hours=2)
    (coverage,) = report["coverage"]
    assert "validate.smoke" in coverage["steps"]["ran"]  # the child runbook is covered
    assert coverage["steps"]["not_run"] == []
    assert coverage["compensations"]["not_exercised"] == []
    assert coverage["trigger_rules"] == {"cleanup (one_failed)": [False, True]}


@pytest.mark.parametrize(
    ("old", "new", "failing"),
    [
        # drop a compensation
        (
            "    compensate: {type: shell, with: {command: [echo, back]}}\n",
            "",
            {"gate times out", "two hosts fail over the budget", "cancelled while the gate waits"},
        ),
        # change a trigger rule
        ("trigger_rule: one_failed", "trigger_rule: all_succeeded", {"failover fails"}),
        # change a budget
        ("max_failures: 1", "max_failures: 0", {"one host fails within the budget"}),
    ],
)
def test_a_mutant_fails_the_case_that_covers_it(suite, old, new, failing):
    runbook = suite / "drill.yaml"
    assert old in RUNBOOK
    runbook.write_text(RUNBOOK.replace(old, new, 1))
    code, report = _run(str(suite))
    assert code == 1
    assert {c["name"] for c in report["cases"] if not c["passed"]} == failing


def test_a_failing_case_shows_expected_and_actual_side_by_side(suite):
    runbook = suite / "drill.yaml"
    runbook.write_text(RUNBOOK.replace("max_failures: 1", "max_failures: 0"))
    done = qlrf("test", str(suite), "-k", "within the budget")
    assert done.returncode == 1
    assert "0 passed, 1 failed" in done.stdout
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.strip().startswith("what"))
    assert header.split() == ["what", "expected", "actual"]
    status = next(line for line in lines if line.strip().startswith("status "))
    assert status.split()[1:3] == ["succeeded", "failed"]
    assert any("patch: failed (FailureBudgetExceeded)" in line for line in lines)


def test_junit_output_is_parsed(suite, tmp_path):
    runbook = suite / "drill.yaml"
    runbook.write_text(RUNBOOK.replace("trigger_rule: one_failed", "trigger_rule: all_succeeded"))
    report = tmp_path / "report.xml"
    done = qlrf("test", str(suite), "--format", "junit", "--output", str(report))
    assert done.returncode == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites" and root.get("tests") == str(CASES)
    assert root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == CASES
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["failover fails"]
    failure = failed[0].find("failure")
    assert failure is not None and "steps.cleanup.status" in (failure.get("message") or "")
    assert failed[0].get("classname") == "tester-drill"


def test_github_annotations_point_at_the_case(suite):
    (suite / "drill.yaml").write_text(RUNBOOK.replace("max_failures: 1", "max_failures: 0"))
    done = qlrf("test", str(suite), "--format", "github")
    assert done.returncode == 1
    (annotation,) = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    line = TESTS.splitlines().index("  - name: one host fails within the budget") + 1
    assert f"drill.test.yaml,line={line},col=" in annotation


def test_a_bad_test_file_exits_2_with_positions(suite):
    bad = suite / "bad.test.yaml"
    bad.write_text(
        "apiVersion: qlrf/v1\n"
        "kind: Test\n"
        "runbook: drill.yaml\n"
        "cases:\n"
        "  - name: bad\n"
        "    mocks:\n"
        "      provison: {output: {}}\n"
        "    expect:\n"
        "      outputs: {rto: {lt: 60}}\n"
        "      stauts: failed\n"
    )
    done = qlrf("test", str(bad))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{bad}:10:7: error[unknown-key]" in done.stdout
    assert "did you mean 'status'" in done.stdout
    checked = qlrf("validate", str(bad))
    assert checked.returncode == 1
    # The schema's errors come first; fixed, what the file names is checked.
    bad.write_text(bad.read_text().replace("      stauts: failed\n", ""))
    done = qlrf("test", str(bad))
    assert done.returncode == 2
    assert f"{bad}:7:7: error[unknown-step]" in done.stdout
    assert "did you mean 'provision'" in done.stdout
    assert f"{bad}:9:17: error[unknown-output]" in done.stdout
    assert "its outputs: rto_seconds, healthy" in done.stdout


def test_a_step_with_no_mock_fails_its_case_unless_run_for_real(tmp_path):
    (tmp_path / "echo.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: echo\nsteps:\n"
        "  - {id: hello, type: shell, with: {command: [echo, hi]}, retry: {max_attempts: 1}}\n"
    )
    (tmp_path / "echo.test.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Test\nrunbook: echo.yaml\ncases:\n"
        "  - name: it says hi\n"
        "    expect: {status: succeeded, steps: {hello: {output: {stdout: {matches: '^hi'}}}}}\n"
    )
    code, report = _run(str(tmp_path))
    assert code == 1
    (mismatch, *_) = report["cases"][0]["mismatches"]
    assert mismatch["actual"].startswith("no mock for shell step `hello`")
    code, report = _run(str(tmp_path), "--real", "shell")
    assert code == 0, report
    bad = qlrf("test", str(tmp_path), "--real", "approval")
    assert bad.returncode == 2 and "--real approval" in bad.stderr


def test_pause_and_resume_at_simulated_times(tmp_path):
    """A pause at 30m holds the next step until the resume at 5h."""
    (tmp_path / "wait.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: wait\nsteps:\n"
        "  - {id: nap, type: sleep, with: {duration: 1h}}\n"
        "  - {id: after, type: shell, with: {command: [echo, done]}}\n"
    )
    (tmp_path / "wait.test.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Test\nrunbook: wait.yaml\ncases:\n"
        "  - name: paused for a while\n"
        "    mocks: {after: {output: {}}}\n"
        "    controls:\n"
        "      - {action: pause, at: 30m, by: carol}\n"
        "      - {action: resume, at: 5h, by: carol}\n"
        "    expect:\n"
        "      status: succeeded\n"
        "      audit: [{event: run_paused, actor: carol}, {event: run_resumed, actor: carol}]\n"
    )
    code, report = _run(str(tmp_path))
    assert code == 0, report
    actual = report["cases"][0]["actual"]
    began = _at(actual["started_at"])
    assert _at(actual["steps"]["after"]["started_at"]) - began >= timedelta(hours=5)
    assert [d["refused"] for d in actual["deliveries"]] == [None, None]


def test_reminders_escalation_and_notified_events_in_simulated_time(tmp_path):
    """A gate's reminders and escalation are durable timers: a day passes in simulated
    time; the escalated approver may then decide, and each event is notified."""
    (tmp_path / "notified.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Campaign\nname: notified\n"
        "notify:\n"
        "  - {on: [gate_waiting, gate_reminder, gate_escalated, gate_decided, gate_timed_out,"
        " wave_budget_spent, run_failed], to: [ops]}\n"
        "steps:\n"
        "  - id: review\n"
        "    type: approval\n"
        "    with: {message: go?, approvers: [bob], timeout: 24h, remind: [12h, 20h],"
        " escalate: {after: 8h, to: [carol]}}\n"
        "  - id: patch\n"
        "    needs: [review]\n"
        "    type: shell\n"
        "    foreach: [a, b, c]\n"
        "    max_failures: 0\n"
        "    with: {command: [echo, '{{ item }}']}\n"
    )
    (tmp_path / "notified.test.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Test\nrunbook: notified.yaml\ncases:\n"
        "  - name: carol approves after the escalation, and a wave spends its budget\n"
        "    mocks: {patch: {items: {b: {fail: {type: CommandFailed}}}, default: {output: {}}}}\n"
        "    decisions: [{gate: review, after: 21h, by: carol, decision: approve}]\n"
        "    expect:\n"
        "      status: failed\n"
        "      audit:\n"
        "        - {event: notification_sent, notification: gate_waiting, gate: review}\n"
        "        - {event: gate_escalated, gate: review}\n"
        "        - {event: notification_sent, notification: gate_escalated}\n"
        "        - {event: notification_sent, notification: gate_reminder}\n"
        "        - {event: notification_sent, notification: gate_reminder}\n"
        "        - {event: gate_decided, actor: carol}\n"
        "        - {event: notification_sent, notification: gate_decided}\n"
        # wave_budget_spent and run_failed are delivered at once, and the audit has
        # them in the order they were answered: only one of them is expected in order.
        "        - {event: notification_sent, notification: wave_budget_spent}\n"
        "  - name: nobody decides\n"
        "    mocks: {patch: {output: {}}}\n"
        "    expect:\n"
        "      status: failed\n"
        "      audit: [{event: notification_sent, notification: gate_timed_out}]\n"
    )
    code, report = _run(str(tmp_path))
    assert code == 0, report


def test_the_examples_tests_pass():
    """Every example ships a test file, and its cases pass (the README's command)."""
    done = qlrf("test", "examples/")
    assert done.returncode == 0, done.stdout + done.stderr
    runbooks = {p.name for p in (ROOT / "examples").glob("*.yaml") if ".test." not in p.name}
    tests = {p.name.replace(".test.yaml", ".yaml") for p in (ROOT / "examples").glob("*.test.yaml")}
    assert runbooks == tests


def test_a_killed_test_run_leaves_no_test_server(tmp_path):
    """kill -9 of `qlrf-run test` in the middle of a case: its test servers die with it
    (a CI job's timeout must not leave them running)."""
    import os
    import signal
    import subprocess

    from tests.helpers.cli import EXE
    from tests.helpers.waiting import eventually

    marker = tmp_path / "running"
    (tmp_path / "slow.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: slow\nsteps:\n"
        f"  - {{id: wait, type: shell, with: {{script: 'touch {marker}; sleep 60'}}}}\n"
    )
    (tmp_path / "slow.test.yaml").write_text(
        "apiVersion: qlrf/v1\nkind: Test\nrunbook: slow.yaml\ncases:\n"
        "  - {name: slow, expect: {status: succeeded}}\n"
    )
    proc = subprocess.Popen(
        [EXE, "test", str(tmp_path), "--real", "shell", "--jobs", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def servers() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, ValueError, IndexError):
                continue
            if parent == proc.pid and argv0.endswith(b"temporal-test-server"):
                found.append(int(entry.name))
        return found

    try:
        eventually(marker.exists, "the case's step runs")
        started = servers()
        assert started, "the case runs on a test server of this process"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in started), "no server")
    finally:
        if proc.poll() is None:
            proc.kill()
