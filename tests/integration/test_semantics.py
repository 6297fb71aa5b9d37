"""The interpreter's semantics, on a real Temporal dev server (docs/engine.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from tests.helpers.processes import running

HEAD = """\
apiVersion: qlrf/v1
kind: Runbook
name: semantics
"""


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_steps_run_top_to_bottom_and_needs_make_a_graph(run):
    """Without needs a step waits for the one above; needs: [] starts at once."""
    outcome = run(
        HEAD
        + """
steps:
  - {id: a, type: shell, with: {command: ["true"]}}
  - {id: b, type: shell, with: {command: ["true"]}}
  - {id: c, type: shell, needs: [], with: {command: ["true"]}}
  - {id: d, type: shell, needs: [b, c], with: {command: ["true"]}}
"""
    )
    assert outcome.state["status"] == "succeeded"
    s = outcome.state["steps"]
    assert _t(s["b"]["started_at"]) >= _t(s["a"]["finished_at"])
    assert _t(s["c"]["started_at"]) < _t(s["b"]["finished_at"])
    assert _t(s["d"]["started_at"]) >= max(_t(s["b"]["finished_at"]), _t(s["c"]["finished_at"]))


def test_concurrency_limit_is_never_exceeded(run):
    """Six independent steps with concurrency 2: never more than two at once, and two do overlap."""
    steps = "".join(
        f"  - {{id: s{i}, type: shell, needs: [], with: {{command: [sleep, '0.2']}}}}\n"
        for i in range(6)
    )
    outcome = run(HEAD + "concurrency: 2\nsteps:\n" + steps)
    assert outcome.state["status"] == "succeeded"
    spans = [(_t(s["started_at"]), _t(s["finished_at"])) for s in outcome.state["steps"].values()]
    most = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert most == 2


def test_trigger_rules_and_skip_propagation(run):
    """A failure skips all_succeeded dependents (transitively) and starts one_failed ones."""
    outcome = run(
        HEAD
        + """
steps:
  - {id: bad, type: shell, on_failure: continue, retry: {max_attempts: 1},
     with: {command: ["false"]}}
  - {id: needs-bad, type: shell, needs: [bad], with: {command: ["true"]}}
  - {id: after-skipped, type: shell, needs: [needs-bad], with: {command: ["true"]}}
  - {id: on-failure, type: shell, needs: [bad], trigger_rule: one_failed,
     with: {command: ["true"]}}
  - {id: all-done, type: shell, needs: [bad, needs-bad], trigger_rule: all_done,
     with: {command: ["true"]}}
  - {id: no-failure, type: shell, needs: [all-done], trigger_rule: one_failed,
     with: {command: ["true"]}}
  - {id: gated, type: shell, needs: [], when: "{{ 1 > 2 }}", with: {command: ["true"]}}
"""
    )
    status = {sid: s["status"] for sid, s in outcome.state["steps"].items()}
    assert status == {
        "bad": "failed",
        "needs-bad": "skipped",
        "after-skipped": "skipped",
        "on-failure": "succeeded",
        "all-done": "succeeded",
        "no-failure": "skipped",
        "gated": "skipped",
    }
    assert outcome.state["status"] == "succeeded", "on_failure: continue keeps the run going"
    assert outcome.step("bad")["error"]["type"] == "CommandFailed"


def test_attempts_are_counted_and_non_retryable_errors_stop_at_once(run):
    """A step that succeeds on its third attempt reports 3; CommandNotFound is not retried."""
    outcome = run(
        HEAD
        + """
steps:
  - id: flaky
    type: shell
    needs: []
    retry: {max_attempts: 5, initial_interval: 100ms}
    with: {script: 'test "$QLRF_ATTEMPT" -ge 3'}
  - id: missing
    type: shell
    needs: []
    on_failure: continue
    retry: {max_attempts: 5, initial_interval: 100ms}
    with: {command: [/no/such/program]}
"""
    )
    assert outcome.step("flaky")["status"] == "succeeded"
    assert outcome.step("flaky")["attempts"] == 3
    assert outcome.step("missing")["status"] == "failed"
    assert outcome.step("missing")["attempts"] == 1
    assert outcome.step("missing")["error"]["type"] == "CommandNotFound"


def test_failure_after_all_retries_names_the_step_and_its_source(run):
    """The run's error names the step, the error type and the YAML location."""
    outcome = run(
        HEAD
        + """
steps:
  - id: broken
    type: shell
    retry: {max_attempts: 2, initial_interval: 100ms}
    with: {script: 'echo "disk full" >&2; exit 3'}
"""
    )
    assert outcome.state["status"] == "failed"
    assert outcome.step("broken")["attempts"] == 2
    error = outcome.state["error"]
    assert error["type"] == "CommandFailed" and error["step"] == "broken"
    assert "runbook.yaml:6:5" in error["message"] and "exit code 3: disk full" in error["message"]


def test_step_timeout(run, tmp_path):
    """A shell step over its start_to_close timeout is stopped by its worker just before
    Temporal's deadline, its whole process group with it, and fails as CommandTimedOut."""
    pids = tmp_path / "pids"
    duration = f"300.{uuid.uuid4().int % 10**9}"  # marks the sleep as this test's
    outcome = run(
        HEAD
        + f"""
steps:
  - id: slow
    type: shell
    timeout: {{start_to_close: 2s, heartbeat: 30s}}
    retry: {{max_attempts: 1}}
    with: {{script: 'sleep {duration} & echo $$ $! > {pids}; wait'}}
"""
    )
    assert outcome.state["status"] == "failed"
    assert outcome.step("slow")["error"]["type"] == "CommandTimedOut"
    assert len(pids.read_text().split()) == 2
    assert not running(duration)


def test_run_timeout_stops_the_run_and_still_runs_finally(run):
    """The run's deadline cancels what runs, marks the run timed_out, and finally still runs."""
    outcome = run(
        HEAD
        + """
timeout: 1s
steps:
  - {id: forever, type: sleep, with: {duration: 1h}}
  - {id: never, type: shell, with: {command: ["true"]}}
finally:
  - {id: cleanup, type: shell, with: {command: ["true"]}}
"""
    )
    assert outcome.state["status"] == "timed_out"
    assert outcome.state["error"]["type"] == "RunTimedOut"
    assert outcome.step("forever")["status"] == "cancelled"
    assert outcome.step("never")["status"] == "skipped"
    assert outcome.step("cleanup")["status"] == "succeeded"


def test_compensation_runs_in_reverse_completion_order_then_finally(run, tmp_path):
    """Succeeded steps are undone last-first; a failed or skipped step is not compensated."""
    log = tmp_path / "undo.log"

    def step(sid: str) -> str:
        return (
            f"  - {{id: {sid}, type: shell, with: {{command: ['true']}}, compensate: "
            f"{{type: shell, with: {{script: 'echo {sid} >> {log}'}}}}}}\n"
        )

    outcome = run(
        HEAD
        + "steps:\n"
        + step("first")
        + step("second")
        + step("third")
        + f"""\
  - {{id: fails, type: assert, with: {{that: "{{{{ false }}}}"}},
     compensate: {{type: shell, with: {{script: 'echo fails >> {log}'}}}}}}
  - {{id: skipped, type: shell, with: {{command: ['true']}},
     compensate: {{type: shell, with: {{script: 'echo skipped >> {log}'}}}}}}
finally:
  - {{id: report, type: shell, with: {{script: 'echo finally >> {log}'}}}}
"""
    )
    assert outcome.state["status"] == "failed"
    assert log.read_text().split() == ["third", "second", "first", "finally"]
    assert outcome.step("first")["compensation"]["status"] == "succeeded"
    assert outcome.step("fails")["compensation"] is None


def test_on_failure_continue_keeps_the_run_successful(run):
    """A step allowed to fail leaves the run succeeded and its dependents skipped."""
    outcome = run(
        HEAD
        + """
steps:
  - {id: optional, type: assert, on_failure: continue, with: {that: "{{ false }}"}}
  - {id: independent, type: shell, needs: [], with: {command: ["true"]}}
"""
    )
    assert outcome.state["status"] == "succeeded"
    assert outcome.step("optional")["status"] == "failed"
    assert outcome.step("optional")["error"]["type"] == "AssertionFailed"


def test_templates_keep_native_types_between_steps(run):
    """A single {{ }} gives lists and numbers; JSON output feeds later steps; outputs are typed."""
    outcome = run(
        HEAD
        + """
inputs:
  hosts: {type: array, default: [web-1, web-2]}
  replicas: {type: integer, default: 3}
steps:
  - id: inventory
    type: shell
    with: {command: [echo, '{"count": 2, "names": ["a", "b"]}'], parse: json}
  - id: check
    type: assert
    with: {that: "{{ steps.inventory.output.json.count == inputs.hosts | length }}"}
outputs:
  hosts: "{{ inputs.hosts }}"
  doubled: "{{ inputs.replicas * 2 }}"
  names: "{{ steps.inventory.output.json.names }}"
  text: "{{ inputs.replicas }} replicas"
"""
    )
    assert outcome.state["status"] == "succeeded"
    assert outcome.result == {
        "hosts": ["web-1", "web-2"],
        "doubled": 6,
        "names": ["a", "b"],
        "text": "3 replicas",
    }


def test_templated_values_never_become_shell_code(run, tmp_path):
    """A script's {{ }} arrives as an environment variable: quotes and $(...) stay text."""
    marker = tmp_path / "pwned"
    hostile = f'x\\"; touch {marker}; echo \\"$(touch {marker})'
    outcome = run(
        HEAD
        + f"""
inputs:
  host: {{type: string, default: "{hostile}"}}
steps:
  - id: greet
    type: shell
    with: {{script: 'echo "patching {{{{ inputs.host }}}}"'}}
"""
    )
    assert outcome.state["status"] == "succeeded"
    assert not marker.exists()
    assert f"touch {marker}" in outcome.step("greet")["output"]["stdout"]


def test_secrets_are_masked_and_absent_from_history(run, monkeypatch):
    """The secret's value is used by the activity, masked in output, and never in history."""
    secret = "s3cr3t-value-4711"
    monkeypatch.setenv("QLRF_SECRET_API_TOKEN", secret)
    outcome = run(
        HEAD
        + """
steps:
  - id: use
    type: shell
    with:
      env: {TOKEN: "{{ secrets.API_TOKEN }}"}
      script: 'echo "token is $TOKEN"; test "${#TOKEN}" -eq 17'
  - id: fail-with-it
    type: shell
    on_failure: continue
    retry: {max_attempts: 1}
    with: {command: [sh, -c, 'echo "$0" >&2; exit 1', "{{ secrets.API_TOKEN }}"]}
"""
    )
    assert outcome.step("use")["status"] == "succeeded"
    assert outcome.step("use")["output"]["stdout"] == "token is ***\n"
    assert outcome.step("fail-with-it")["error"]["message"] == "exit code 1: ***"
    history = outcome.history_text()
    assert "token is ***" in history, "payloads were decoded"
    assert secret not in history
    assert "@@qlrf-secret:API_TOKEN@@" in history, "history holds the reference only"


def test_missing_secret_fails_the_step_without_retrying(run):
    """An unset secret is a clear, non-retryable failure."""
    outcome = run(
        HEAD
        + """
steps:
  - id: use
    type: shell
    retry: {max_attempts: 5}
    with: {command: [echo, "{{ secrets.NOT_SET_ANYWHERE }}"]}
"""
    )
    assert outcome.step("use")["error"]["type"] == "SecretMissing"
    assert outcome.step("use")["attempts"] == 1
    assert "QLRF_SECRET_NOT_SET_ANYWHERE" in outcome.step("use")["error"]["message"]


def test_child_runbook_runs_as_a_child_workflow(run, tmp_path):
    """A runbook step runs the compiled child; its outputs are the step's output."""
    (tmp_path / "child.yaml").write_text("""\
apiVersion: qlrf/v1
kind: Runbook
name: child
inputs:
  n: {type: integer, required: true}
steps:
  - {id: double, type: shell, with: {command: [echo, "{{ inputs.n * 2 }}"]}}
outputs:
  doubled: "{{ steps.double.output.stdout | trim | int }}"
""")
    outcome = run(
        HEAD
        + """
inputs:
  n: {type: integer, default: 21}
steps:
  - id: call
    type: runbook
    with: {file: child.yaml, inputs: {n: "{{ inputs.n }}"}}
  - id: check
    type: assert
    with: {that: "{{ steps.call.output.doubled == 42 }}"}
"""
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    assert outcome.step("call")["output"] == {"doubled": 42}
    assert f"{outcome.workflow_id}.call" in outcome.history_text()
