"""`apply --dry-run`: what a run of this plan would do with these inputs, started nowhere.

Every step's `with` is rendered against the inputs, as the engine would render it.
A template that needs what is known only once the run runs (a step's output, a
fan-out's item) is shown as written; a secret stays its name. Fan-outs show their
item count, waves and failure budgets when their list is known; lock keys and gates
are rendered too. Nothing is started and the run store is not touched: this reads
the compiled plan only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from runner import secretref, templates
from runner.contract.messages import Inputs, JsonObject
from runner.durations import format_ms
from runner.engine.render import Secrets, TemplateFailure, render_string
from runner.plan import waves as arithmetic
from runner.plan.model import FanOut, Node, Plan

UNKNOWN_STEP = "not known before the run: the step has not run yet"
UNKNOWN_RUN = "not known before the run: it has not started"


@dataclass
class Rendered:
    """A value as far as it can be rendered now, and the templates left as written."""

    value: Any
    unresolved: list[str]


def _context(plan: Plan, inputs: Inputs, user: str) -> dict[str, Any]:
    steps = (node.id for node in (*plan.nodes, *plan.finally_nodes))
    return {
        "inputs": dict(inputs),
        "steps": templates.Facts({}, dict.fromkeys(steps, UNKNOWN_STEP)),
        "run": templates.Facts(
            {"name": plan.name, "kind": plan.kind, "started_by": user},
            {"id": UNKNOWN_RUN, "started_at": UNKNOWN_RUN},
        ),
    }


def _shown_secrets(value: Any, asked: set[str]) -> Any:
    """The references this template made, back to the names a reader knows
    (`{{ secrets.NAME }}`). Text that only looks like one (from an input) stays text,
    as it does in the run."""

    def shown(match: re.Match[str]) -> str:
        key = secretref.key(match)
        return "{{ secrets." + key + " }}" if key in asked else match.group(0)

    if isinstance(value, str):
        return secretref.PATTERN.sub(shown, value)
    if isinstance(value, list):
        return [_shown_secrets(v, asked) for v in value]
    if isinstance(value, dict):
        return {k: _shown_secrets(v, asked) for k, v in value.items()}
    return value


_EXPRESSION = re.compile(r"{{.*?}}", re.S)


def _piecewise(text: str, context: dict[str, Any]) -> str:
    """Text whose whole template cannot be rendered yet, with each `{{ }}` that can be
    rendered in place and the others as written (not for text with `{% %}` blocks,
    whose pieces mean nothing alone)."""
    if "{%" in text:
        return text

    def one(match: re.Match[str]) -> str:
        try:
            value = _rendered(match.group(0), context)
        except TemplateFailure:
            return match.group(0)
        return value if isinstance(value, str) else json.dumps(value)

    return _EXPRESSION.sub(one, text)


def _rendered(text: str, context: dict[str, Any]) -> Any:
    """One template rendered, its own secret references shown by name."""
    asked = Secrets()
    value = render_string(text, {**context, "secrets": asked})
    return _shown_secrets(value, set(+asked.asked))


def render_value(value: Any, context: dict[str, Any], path: str = "") -> Rendered:
    left: list[str] = []

    def walk(current: Any, where: str) -> Any:
        if isinstance(current, str):
            if not templates.is_template(current):
                return current
            try:
                return _rendered(current, context)
            except TemplateFailure:
                left.append(where or "$")
                return _piecewise(current, context)
        if isinstance(current, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(current)]
        if isinstance(current, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in current.items()}
        return current

    return Rendered(walk(value, path), left)


def _items(fan: FanOut, context: dict[str, Any]) -> list[Any] | None:
    """The fan-out's list, when the inputs give it."""
    if isinstance(fan.foreach, dict):
        return None  # from_file: read on the worker
    items = render_value(fan.foreach, context)
    return items.value if not items.unresolved and isinstance(items.value, list) else None


def _fanout(fan: FanOut, listed: list[Any] | None) -> JsonObject:
    found: JsonObject = {"as": fan.as_, "concurrency": fan.concurrency}
    if listed is None:
        found["foreach"] = fan.foreach
        found["items"] = None
        found["note"] = (
            "read from the file on the worker, page by page, as the step runs"
            if isinstance(fan.foreach, dict)
            else "the list is known only once the run runs"
        )
        return found
    found["items"] = len(listed)
    found["waves"] = []
    for i, wave in enumerate(arithmetic.bounds(len(listed), fan.waves)):
        spec = fan.waves[wave.spec] if wave.spec >= 0 else None
        found["waves"].append(
            {
                "name": wave.name,
                "items": wave.end - wave.start,
                "first": wave.start + 1,
                "last": wave.end,
                "budget": arithmetic.wave_budget(
                    i == 0,
                    wave.end - wave.start,
                    spec,
                    fan.max_failures,
                    fan.max_failures_percent,
                ),
                "approval": bool(spec and spec.approval),
                "pause": format_ms(spec.pause_ms) if spec and spec.pause_ms else None,
            }
        )
    return found


def _step(node: Node, context: dict[str, Any]) -> JsonObject:
    shown = render_value(node.with_, context)
    step: JsonObject = {
        "id": node.id,
        "type": node.type,
        "section": node.section,
        "needs": list(node.needs),
        "trigger_rule": node.trigger_rule,
        "when": node.when,
        "with": shown.value,
        "as_written": shown.unresolved,
        "source": node.source,
    }
    if isinstance(node.when, str):
        when = render_value(node.when, context)
        if not when.unresolved:
            step["when_now"] = when.value
    if node.fanout is not None:
        listed = _items(node.fanout, context)
        step["fanout"] = _fanout(node.fanout, listed)
        if listed:
            # The first item's `with`, as its attempt would get it.
            first = render_value(node.with_, {**context, node.fanout.as_: listed[0]})
            step["first_item"] = {
                "item": arithmetic.given_name(listed[0]) or arithmetic.item_key(listed[0]),
                "with": first.value,
                "as_written": first.unresolved,
            }
    if node.locks:
        step["locks"] = [render_value(key, context).value for key in node.locks]
    if node.type == "approval":
        params = shown.value if isinstance(shown.value, dict) else {}
        step["gate"] = {
            "message": params.get("message"),
            "approvers": params.get("approvers", []),
            "min_approvals": params.get("min_approvals", 1),
            "timeout": params.get("timeout"),
            "modifiable": params.get("modifiable", []),
        }
    if node.compensate is not None:
        step["compensate"] = {
            "type": node.compensate.type,
            "with": render_value(node.compensate.with_, context).value,
        }
    return step


def dry_run(plan: Plan, inputs: Inputs, user: str) -> JsonObject:
    """The plan as it would run with `inputs`, started by `user`, as JSON."""
    context = _context(plan, inputs, user)
    return {
        "dry_run": True,
        "runbook": plan.name,
        "kind": plan.kind,
        "plan_hash": plan.plan_hash,
        "inputs": dict(inputs),
        "started_by": user,
        "locks": [render_value(key, context).value for key in plan.locks],
        "timeout": format_ms(plan.timeout_ms) if plan.timeout_ms else None,
        "steps": [_step(node, context) for node in (*plan.nodes, *plan.finally_nodes)],
        "gates": [node.id for node in plan.nodes if node.type == "approval"],
    }
