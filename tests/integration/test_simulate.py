"""`qlrf-run simulate FILE --like RUN`: an edited runbook against a real run's recorded
outcomes, from the run store, in simulated time; the store is only read."""

from __future__ import annotations

import json
import uuid

from tests.helpers.cli import qlrf

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Runbook
name: sim-{tag}
defaults: {{retry: {{max_attempts: 1}}, timeout: 1m}}
steps:
  - id: measure
    type: shell
    with: {{command: [echo, '{{"lag": 42}}'], parse: json}}
  - id: patch
    type: shell
    needs: [measure]
    foreach: [a, b, c]
    as: host
    max_failures: 1
    with: {{command: [test, "{{{{ host }}}}", "!=", b]}}
  - id: verify
    type: assert
    needs: [patch]
    with: {{that: "{{{{ steps.measure.output.json.lag <= LIMIT }}}}"}}
"""


def test_an_edited_runbook_meets_the_runs_outcomes(env, tmp_path):
    tag = uuid.uuid4().hex[:6]
    original = tmp_path / "original.yaml"
    original.write_text(RUNBOOK.format(tag=tag).replace("LIMIT", "5"))
    rid = f"sim-{tag}"
    applied = qlrf("apply", str(original), "--run-id", rid, env=env)
    assert applied.returncode == 1, applied.stdout + applied.stderr
    listed = len(json.loads(qlrf("list", "--format", "json", env=env).stdout))

    edited = tmp_path / "edited.yaml"
    edited.write_text(
        RUNBOOK.format(tag=tag).replace("LIMIT", "50")
        + "  - {id: announce, type: notify, needs: [verify], with: {message: done}}\n"
    )
    done = qlrf("simulate", str(edited), "--like", rid, "--format", "json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["run"] == {"then": "failed", "now": "succeeded"}
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["measure"]["note"] == "same"
    # The recorded failure of item b replays: within the budget, as it was.
    assert steps["patch"]["then"] == steps["patch"]["now"] == "succeeded"
    assert steps["verify"] == {
        "step": "verify",
        "then": "failed",
        "now": "succeeded",
        "note": "would now run and succeed",
    }
    assert steps["announce"]["then"] is None
    assert steps["announce"]["note"].startswith("new step: would run and succeed")
    assert "assumed" in steps["announce"]["note"]

    text = qlrf("simulate", str(edited), "--like", rid, env=env)
    assert text.returncode == 0
    assert "the run: failed then, succeeded now" in text.stdout
    # Nothing was started for real, and nothing written to the store.
    assert len(json.loads(qlrf("list", "--format", "json", env=env).stdout)) == listed


def test_a_run_the_store_does_not_have_is_named(env, tmp_path):
    runbook = tmp_path / "r.yaml"
    runbook.write_text(RUNBOOK.format(tag="x").replace("LIMIT", "5"))
    done = qlrf("simulate", str(runbook), "--like", "no-such-run", env=env)
    assert done.returncode == 1
    assert "no run 'no-such-run' in the run store" in done.stderr
    assert "Traceback" not in done.stderr
