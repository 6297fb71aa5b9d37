"""A plan's steps and gates by the names a test file uses for them.

A step of a child runbook is CHILD.STEP (the `runbook` step's id, a dot, the child's
step id), to any depth, and its run is PARENT.CHILD (runner/engine/dispatch.py); a
wave's gate is STEP/WAVE, as `qlrf-run approve` names it.
"""

from __future__ import annotations

from collections.abc import Iterator

from runner.plan.model import Node, Plan


def nodes(plan: Plan, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """(name, node) of every step, `finally` steps and child runbooks' steps included."""
    for node in (*plan.nodes, *plan.finally_nodes):
        name = f"{prefix}{node.id}"
        yield name, node
        if node.child is not None:
            yield from nodes(node.child, f"{name}.")


def steps(plan: Plan) -> dict[str, Node]:
    return dict(nodes(plan))


def gates(plan: Plan) -> dict[str, Node]:
    """Gate name -> the step that opens it: approval steps, and waves with `approval`."""
    found: dict[str, Node] = {}
    for name, node in nodes(plan):
        if node.capabilities.evaluator == "gate":
            found[name] = node
        if node.fanout is not None:
            for wave in node.fanout.waves:
                if wave.approval:
                    found[f"{name}/{wave.name}"] = node
    return found


def mockable(node: Node) -> bool:
    """Whether a test answers the step: it runs as an activity (in-workflow steps and
    child runbooks run for real)."""
    return node.runs_in == "activity"
