"""Plan renderers: text (topological layers) and Mermaid (the graph)."""

from __future__ import annotations

import json
from typing import Any

from runner.contract.messages import Inputs
from runner.durations import format_ms
from runner.plan.model import Node, Plan, RetryPolicy, Timeouts


def layers(nodes: tuple[Node, ...]) -> list[list[Node]]:
    """Nodes grouped by depth: layer k holds nodes whose longest need chain has length k."""
    depth: dict[str, int] = {}
    by_id = {n.id: n for n in nodes}
    for node in nodes:
        stack = [node.id]
        while stack:
            current = stack[-1]
            pending = [n for n in by_id[current].needs if n in by_id and n not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            needs = [depth[n] for n in by_id[current].needs if n in depth]
            depth[current] = 1 + max(needs) if needs else 0
    out: list[list[Node]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in nodes:
        out[depth[node.id]].append(node)
    return out


def retry_text(retry: RetryPolicy | None) -> str:
    if retry is None:
        return "-"
    attempts = "unlimited" if retry.max_attempts == 0 else str(retry.max_attempts)
    text = (
        f"{attempts} attempts, {format_ms(retry.initial_interval_ms)} "
        f"x{retry.backoff_coefficient:g} up to {format_ms(retry.max_interval_ms)}"
    )
    if retry.non_retryable_errors:
        text += f", not retried: {', '.join(retry.non_retryable_errors)}"
    return text


def timeouts_text(timeouts: Timeouts | None) -> str:
    if timeouts is None:
        return "-"
    parts = [
        f"{name.removesuffix('_ms')} {format_ms(value)}"
        for name, value in vars(timeouts).items()
        if value is not None
    ]
    return ", ".join(parts) or "-"


def _when(when: Any) -> str:
    """A step's `when` as written: always, a template, or a literal."""
    return "always" if when is None else when if isinstance(when, str) else json.dumps(when)


def _node_lines(node: Node) -> list[str]:
    where = "in workflow" if node.runs_in == "workflow" else node.runs_in.replace("_", " ")
    lines = [
        f"  {node.id}  [{node.type}, {where}]  {node.name if node.name != node.id else ''}".rstrip()
    ]
    lines.append(
        f"      needs: {', '.join(node.needs) or '-'}   trigger: {node.trigger_rule}"
        f"   when: {_when(node.when)}   on_failure: {node.on_failure}"
    )
    if node.runs_in == "activity":
        lines.append(f"      retry: {retry_text(node.retry)}")
        lines.append(f"      timeout: {timeouts_text(node.timeouts)}")
    if node.fanout:
        f = node.fanout
        waves = (
            ", ".join(
                f"{w.name}={w.size if w.size is not None else f'{w.size_percent:g}%'}"
                + (f" (pause {format_ms(w.pause_ms)})" if w.pause_ms else "")
                + (" (approval)" if w.approval else "")
                for w in f.waves
            )
            or "one wave"
        )
        items = f.foreach if isinstance(f.foreach, str) else json.dumps(f.foreach)
        lines.append(f"      foreach: {items} as {f.as_}; waves: {waves}")
        budget = (
            f"{f.max_failures_percent:g}%"
            if f.max_failures_percent is not None
            else ("none" if f.max_failures is None else str(f.max_failures))
        )
        at_once = f.concurrency if f.concurrency is not None else "the run's"
        lines.append(f"      items at once: {at_once}; failure budget per wave: {budget}")
    if node.compensate:
        lines.append(f"      compensate: {node.compensate.type} ({node.compensate.name})")
    lines.append(f"      source: {node.source}")
    return lines


def render_text(plan: Plan, inputs: Inputs, missing: list[str]) -> str:
    head = [f"{plan.name} ({plan.kind})  plan {plan.plan_hash[:16]}"]
    if plan.description:
        head.append(f"  {plan.description}")
    run_bits = []
    if plan.concurrency:
        run_bits.append(f"concurrency {plan.concurrency}")
    if plan.timeout_ms:
        run_bits.append(f"timeout {format_ms(plan.timeout_ms)}")
    if run_bits:
        head.append("run: " + ", ".join(run_bits))
    if inputs:
        shown = []
        for name, value in inputs.items():
            if name in missing:
                shown.append(f"{name}=<required, not given>")
            else:
                shown.append(f"{name}={json.dumps(value)}")
        head.append("inputs: " + ", ".join(shown))
    lines = head
    for title, nodes in (("steps", plan.nodes), ("finally", plan.finally_nodes)):
        if not nodes:
            continue
        lines.append("")
        lines.append(f"{title}:")
        for k, layer in enumerate(layers(nodes), start=1):
            lines.append(f" layer {k}")
            for node in layer:
                lines.extend(_node_lines(node))
    if plan.outputs:
        lines.append("")
        lines.append("outputs: " + ", ".join(plan.outputs))
    return "\n".join(lines)


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(plan: Plan) -> str:
    """A flowchart; node keys are n0, n1... because step ids like `end` would break Mermaid."""
    keys = {n.id: f"n{i}" for i, n in enumerate((*plan.nodes, *plan.finally_nodes))}
    lines = ["flowchart TD"]

    def emit(nodes: tuple[Node, ...], indent: str) -> None:
        for node in nodes:
            fan = "<br/>foreach" if node.fanout else ""
            label = _label(f"{node.name}<br/><i>{node.type}</i>{fan}")
            if node.type == "approval":
                lines.append(f'{indent}{keys[node.id]}{{{{"{label}"}}}}')
            else:
                lines.append(f'{indent}{keys[node.id]}["{label}"]')
        for node in nodes:
            for need in node.needs:
                rule = "" if node.trigger_rule == "all_succeeded" else f"|{node.trigger_rule}|"
                lines.append(f"{indent}{keys[need]} -->{rule} {keys[node.id]}")

    emit(plan.nodes, "  ")
    if plan.finally_nodes:
        lines.append('  subgraph finally ["finally"]')
        emit(plan.finally_nodes, "    ")
        lines.append("  end")
    return "\n".join(lines)


def render_dry_run(shown: dict[str, Any]) -> str:
    """`apply --dry-run` as text: each step with its `with` as it would be rendered."""
    lines = [
        f"dry run of {shown['runbook']} ({shown['kind']})  plan {shown['plan_hash'][:16]}  "
        f"as {shown['started_by']}: nothing is started",
    ]
    if shown["inputs"]:
        lines.append(
            "inputs: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in shown["inputs"].items())
        )
    if shown["locks"]:
        lines.append("run holds locks: " + ", ".join(map(str, shown["locks"])))
    if shown["gates"]:
        lines.append("gates: " + ", ".join(shown["gates"]))
    section = None
    for step in shown["steps"]:
        if step["section"] != section:
            section = step["section"]
            lines += ["", f"{section}:"]
        needs = ", ".join(step["needs"]) or "-"
        lines.append(
            f"  {step['id']}  [{step['type']}]  needs: {needs}   when: {_shown_when(step)}"
        )
        lines.extend(_with_lines(step["with"], "      "))
        if step["as_written"]:
            lines.append(
                "      shown as written (known only once the run runs): "
                + ", ".join(step["as_written"])
            )
        fan = step.get("fanout")
        if fan is not None:
            if fan["items"] is None:
                lines.append(f"      foreach: {fan['note']}")
            else:
                waves = "; ".join(
                    f"{w['name']}: items {w['first']}-{w['last']} ({w['items']})"
                    + (f", budget {w['budget']}" if w["budget"] is not None else ", no budget")
                    + (", approval" if w["approval"] else "")
                    + (f", then pause {w['pause']}" if w["pause"] else "")
                    for w in fan["waves"]
                )
                at_once = fan["concurrency"] or "the run's"
                lines.append(f"      foreach: {fan['items']} item(s), {at_once} at once; {waves}")
        first = step.get("first_item")
        if first is not None:
            lines.append(f"      item {first['item']} gets:")
            lines.extend(_with_lines(first["with"], "        "))
        if step.get("locks"):
            lines.append("      holds locks: " + ", ".join(map(str, step["locks"])))
        gate = step.get("gate")
        if gate is not None:
            who = ", ".join(map(str, gate["approvers"])) or "anyone"
            lines.append(
                f"      gate: {gate['min_approvals']} of {who}"
                + (f", times out after {gate['timeout']}" if gate["timeout"] else "")
            )
        if step.get("compensate"):
            lines.append(f"      compensate: {step['compensate']['type']}")
    return "\n".join(lines)


def _with_lines(params: Any, indent: str) -> list[str]:
    """A step's `with`, one key a line; a script keeps its lines (shown with each
    template's value in place: bash gets each as a quoted variable, never as code)."""
    if not isinstance(params, dict):
        return [f"{indent}{json.dumps(params, ensure_ascii=False)}"]
    lines = []
    for key, value in params.items():
        if isinstance(value, str) and "\n" in value.strip():
            lines.append(f"{indent}{key}: |")
            lines.extend(f"{indent}  {line}" for line in value.rstrip("\n").splitlines())
        else:
            lines.append(f"{indent}{key}: {json.dumps(value, ensure_ascii=False)}")
    return lines


def _shown_when(step: dict[str, Any]) -> str:
    shown = _when(step["when"])
    if "when_now" in step:
        shown += f" (now {json.dumps(step['when_now'])})"
    return shown
