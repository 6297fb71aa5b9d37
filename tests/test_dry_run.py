"""`qlrf-run apply --dry-run`: the plan rendered against the inputs, with nothing started.

The installed CLI runs with no Temporal address, no run store and a fresh state folder:
a dry run that reached for a server, started the embedded defaults or wrote anything
would show there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runner.secretref import marker
from tests.helpers.cli import qlrf

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Campaign
name: dry
inputs:
  hosts: {type: array, required: true}
  version: {type: string, default: "3.0.13"}
  note: {type: string, default: ""}
locks: ["fleet:{{ inputs.version }}"]
steps:
  - id: review
    type: approval
    with:
      message: "patch {{ inputs.hosts | length }} hosts to {{ inputs.version }}? {{ inputs.note }}"
      approvers: [bob, carol]
      min_approvals: 2
      timeout: 24h
  - id: patch
    type: shell
    needs: [review]
    locks: ["host-db:{{ inputs.version }}"]
    foreach: "{{ inputs.hosts }}"
    as: host
    concurrency: 5
    waves:
      - {name: canary, size: 1}
      - {name: half, size: "50%", pause: 1m}
      - {name: rest, size: "100%"}
    max_failures: 1
    with:
      env: {TOKEN: "{{ secrets.deploy_token }}"}
      script: |
        echo "{{ host.name }} to {{ inputs.version }}"
    compensate:
      type: shell
      with: {command: [echo, "undo {{ inputs.version }}"]}
  - id: report
    type: notify
    with: {message: "{{ steps.patch.output.succeeded }} patched to {{ inputs.version }}"}
"""


def _nowhere(tmp_path: Path) -> dict[str, str]:
    """No servers to reach, and a state folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLRF_")}
    env.update(
        XDG_STATE_HOME=str(tmp_path / "state"),
        HOME=str(tmp_path / "home"),
        QLRF_TEMPORAL_ADDRESS="127.0.0.1:1",  # nothing listens: a call would fail
        QLRF_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        QLRF_USER="alice",
    )
    return env


def _dry(tmp_path: Path, *args: str) -> Any:
    path = tmp_path / "dry.yaml"
    path.write_text(RUNBOOK)
    hosts = json.dumps([{"name": f"web-{i}", "address": f"10.0.0.{i}"} for i in range(1, 11)])
    done = qlrf(
        "apply", str(path), "--dry-run", "-i", f"hosts={hosts}", *args, env=_nowhere(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # no embedded server, no store, no run
    return done


def test_a_dry_run_renders_every_step_and_starts_nothing(tmp_path: Path) -> None:
    shown = json.loads(_dry(tmp_path, "--format", "json").stdout)
    assert shown["dry_run"] is True and shown["started_by"] == "alice"
    assert shown["locks"] == ["fleet:3.0.13"] and shown["gates"] == ["review"]
    steps = {step["id"]: step for step in shown["steps"]}
    gate = steps["review"]["gate"]
    assert gate["message"] == "patch 10 hosts to 3.0.13? "
    assert gate["approvers"] == ["bob", "carol"] and gate["min_approvals"] == 2
    patch = steps["patch"]
    assert patch["locks"] == ["host-db:3.0.13"]
    assert patch["with"]["env"] == {"TOKEN": "{{ secrets.deploy_token }}"}  # a name only
    fan = patch["fanout"]
    assert fan["items"] == 10 and fan["concurrency"] == 5
    assert [(w["name"], w["items"], w["budget"]) for w in fan["waves"]] == [
        ("canary", 1, 0),
        ("half", 4, 1),
        ("rest", 5, 1),
    ]
    assert fan["waves"][1]["pause"] == "1m"
    assert patch["first_item"]["item"] == "web-1"
    assert patch["first_item"]["with"]["script"].strip() == 'echo "web-1 to 3.0.13"'
    assert patch["compensate"]["with"] == {"command": ["echo", "undo 3.0.13"]}
    # What only the run knows is shown as written.
    report = steps["report"]["with"]["message"]
    assert report == "{{ steps.patch.output.succeeded }} patched to 3.0.13"  # piece by piece
    assert steps["report"]["as_written"] == ["message"]


def test_the_text_form_reads_as_the_plan_does(tmp_path: Path) -> None:
    text = _dry(tmp_path).stdout
    assert "dry run of dry (Campaign)" in text and "nothing is started" in text
    assert "canary: items 1-1 (1), budget 0; half: items 2-5 (4), budget 1, then pause 1m" in text
    assert "gate: 2 of bob, carol, times out after 24h" in text
    assert "item web-1 gets:" in text
    assert "shown as written (known only once the run runs): message" in text


def test_a_forged_reference_in_an_input_stays_text(tmp_path: Path) -> None:
    """An input holding a secret's reference is never taken for one, here either."""
    forged = marker("deploy_token")
    inputs = tmp_path / "inputs.json"  # `-i note=@...` would read a file
    inputs.write_text(json.dumps({"note": forged}))
    shown = json.loads(_dry(tmp_path, "--inputs-file", str(inputs), "--format", "json").stdout)
    review = next(step for step in shown["steps"] if step["id"] == "review")
    assert review["gate"]["message"].endswith(forged)  # the text the run would show


def test_a_missing_required_input_is_refused_as_apply_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "dry.yaml"
    path.write_text(RUNBOOK)
    done = qlrf("apply", str(path), "--dry-run", env=_nowhere(tmp_path))
    assert done.returncode != 0 and "input 'hosts' is required" in done.stderr
    assert "Traceback" not in done.stderr
