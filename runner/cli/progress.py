"""Rendering a run's state for people: live progress lines, a status table, a summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runner.cli.common import out

ICONS = {
    "succeeded": "ok",
    "failed": "FAILED",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "running": "running",
    "waiting": "waiting",
    "pending": "pending",
}


def _seconds(step: dict[str, Any]) -> float | None:
    if not step.get("started_at") or not step.get("finished_at"):
        return None
    start = datetime.fromisoformat(step["started_at"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(step["finished_at"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def step_line(sid: str, step: dict[str, Any]) -> str:
    status = step["status"]
    parts = [f"  {sid:<24} {ICONS.get(status, status):<9}"]
    if step.get("attempts"):
        parts.append(f"attempt {step['attempts']}")
    took = _seconds(step)
    if took is not None and status != "skipped":
        parts.append(f"{took:.1f}s")
    if step.get("error"):
        parts.append(f"{step['error']['type']}: {step['error']['message']}")
    elif step.get("reason") and status in ("skipped", "cancelled"):
        parts.append(f"({step['reason']})")
    comp = step.get("compensation")
    if comp:
        parts.append(f"[compensation {comp['status']}]")
    return "  ".join(parts)


class Follower:
    """Prints one line each time a step's status, attempt or compensation changes."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.gates: dict[str, tuple[Any, ...]] = {}

    def update(self, state: dict[str, Any]) -> None:
        # In the order things happened, not the order of the mapping.
        steps = sorted(
            state.get("steps", {}).items(),
            key=lambda kv: (kv[1].get("finished_at") or kv[1].get("started_at") or "", kv[0]),
        )
        for sid, step in steps:
            key = (
                step["status"],
                step.get("attempts"),
                (step.get("compensation") or {}).get("status"),
            )
            if step["status"] == "pending" or self.seen.get(sid) == key:
                continue
            self.seen[sid] = key
            out(step_line(sid, step))
        for gate in state.get("gates", []):
            key = (gate["status"], len(gate["approvals"]), len(gate["modifications"]))
            if self.gates.get(gate["gate"]) == key:
                continue
            self.gates[gate["gate"]] = key
            if gate["status"] == "waiting":
                for line in gate_lines(state, gate):
                    out(line)
            else:
                out(f"  gate {gate['gate']} {gate['status']}")


def gate_lines(state: dict[str, Any], gate: dict[str, Any]) -> list[str]:
    who = ", ".join(gate["approvers"]) or "anyone"
    count = f"{len(gate['approvals'])}/{gate['min_approvals']}"
    return [
        f"  gate {gate['gate']} waits for {who} ({count} approvals) until {gate['deadline']}: "
        f"{gate['message']}",
        f"      qlrf-run approve {state['workflow_id']} {gate['gate']}   (or reject, or modify "
        f"--set NAME=VALUE for {', '.join(gate['modifiable']) or 'no input'})",
    ]


def summary(state: dict[str, Any], ui_url: str | None = None) -> str:
    steps = state.get("steps", {})
    counts: dict[str, int] = {}
    for step in steps.values():
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [f"run {state['workflow_id']}: {state['status']} ({shown})"]
    if state.get("error"):
        lines.append(f"  error: {state['error']['type']}: {state['error']['message']}")
    if state.get("outputs"):
        for key, value in state["outputs"].items():
            lines.append(f"  output {key} = {value!r}")
    if ui_url:
        lines.append(f"  {workflow_link(ui_url, state['workflow_id'])}")
    return "\n".join(lines)


def workflow_link(ui_url: str, workflow_id: str) -> str:
    from urllib.parse import quote

    return f"{ui_url}/namespaces/default/workflows/{quote(workflow_id, safe='')}"


def status_text(state: dict[str, Any], ui_url: str | None = None) -> str:
    head = [
        f"{state['name']} ({state['kind']})  {state['status']}",
        f"  run {state['workflow_id']}  started by {state['started_by']} at "
        f"{state['started_at']}"
        + (f", finished {state['finished_at']}" if state.get("finished_at") else ""),
    ]
    body = [step_line(sid, step) for sid, step in state["steps"].items()]
    for gate in state.get("gates", []):
        if gate["status"] == "waiting":
            body += gate_lines(state, gate)
    return "\n".join([*head, *body, summary(state, ui_url)])
