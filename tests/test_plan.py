"""The plan: deterministic, hashed, with effective policies merged field by field."""

from __future__ import annotations

import json

from runner.cli.render_plan import layers, render_mermaid
from runner.pipeline import compile_file
from tests.helpers.cli import ROOT, qlrf

DRILL = ROOT / "tests" / "runbooks" / "payments-dr-drill.yaml"


def test_same_file_and_inputs_give_byte_identical_json_across_processes():
    """Two separate processes print the same bytes and the same plan_hash."""
    first = qlrf(
        "plan", "tests/runbooks/payments-dr-drill.yaml", "--input", "region=eu-west-1", "-f", "json"
    )
    second = qlrf(
        "plan", "tests/runbooks/payments-dr-drill.yaml", "--input", "region=eu-west-1", "-f", "json"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    plan = json.loads(first.stdout)
    assert len(plan["plan_hash"]) == 64


def test_hash_ignores_comments_and_layout_but_not_behaviour(tmp_path):
    """Reformatting keeps plan_hash; changing a retry changes it."""
    original = compile_file(DRILL).plan
    text = DRILL.read_text()
    reformatted = tmp_path / "drill.yaml"
    reformatted.write_text("# a new comment\n\n" + text)
    assert compile_file(reformatted).plan.plan_hash == original.plan_hash
    changed = tmp_path / "drill2.yaml"
    changed.write_text(text.replace("max_attempts: 5", "max_attempts: 6"))
    assert compile_file(changed).plan.plan_hash != original.plan_hash


def test_effective_retry_merges_type_defaults_then_defaults_then_step():
    """Field by field: the step's own fields win, the rest come from defaults, then the type."""
    plan = compile_file(DRILL).plan
    check_app = plan.node("check-app")
    assert check_app.retry is not None and check_app.timeouts is not None
    assert check_app.retry.max_attempts == 5  # the step's own
    assert check_app.retry.initial_interval_ms == 1000  # the step's own
    assert check_app.retry.max_interval_ms == 60_000  # the shell type's default
    assert check_app.retry.non_retryable_errors == ("CommandNotFound", "PayloadsTooLarge")
    assert check_app.timeouts.start_to_close_ms == 600_000  # defaults.timeout: 10m
    assert check_app.timeouts.heartbeat_ms == 30_000  # the shell type's default
    provision = plan.node("provision")
    assert provision.retry is not None and provision.retry.max_attempts == 3  # defaults.retry
    assert plan.node("settle").retry is None, "a sleep is a workflow timer, never retried"


def test_nodes_carry_needs_trigger_rule_and_source():
    """Implicit needs are the step above; every node cites its file position."""
    plan = compile_file(DRILL).plan
    assert plan.node("settle").needs == ("provision",)
    assert plan.node("health").needs == ("check-db", "check-app")
    assert plan.node("report").section == "finally"
    assert all(n.trigger_rule == "all_succeeded" for n in plan.nodes)
    assert plan.node("provision").source.endswith("drill.yaml:30:5")


def test_layers_group_steps_by_depth():
    """Parallel checks share a layer."""
    plan = compile_file(DRILL).plan
    ids = [[n.id for n in layer] for layer in layers(plan.nodes)]
    assert ids == [["provision"], ["settle"], ["check-db", "check-app"], ["health"], ["measure"]]


def test_mermaid_shows_every_edge():
    """The Mermaid graph has one edge per need."""
    plan = compile_file(DRILL).plan
    text = render_mermaid(plan)
    edges = [line for line in text.splitlines() if "-->" in line]
    assert len(edges) == sum(len(n.needs) for n in plan.nodes)
    assert text.startswith("flowchart TD")


def test_plan_text_shows_layers_and_effective_policies():
    """The text plan lists layers with type, needs, when, retry and timeouts."""
    result = qlrf("plan", "tests/runbooks/payments-dr-drill.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "layer 3" in out and "check-app  [shell, activity]" in out
    assert "retry: 5 attempts, 1s x2 up to 1m" in out
    assert "timeout: start_to_close 10m, heartbeat 30s" in out
