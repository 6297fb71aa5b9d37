"""Rendering a run's state for people: live progress lines, a status table, a summary."""

from __future__ import annotations

import time
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


BAR_WIDTH = 24
WAVE_LINE_SECONDS = 2.0  # a running wave's bar is printed again at most this often


def bar(done: int, failed: int, running: int, size: int) -> str:
    """`[###x>>.....]`: succeeded or skipped, failed, running, still to do."""
    if size <= 0:
        return "[" + " " * BAR_WIDTH + "]"

    def cells(n: int) -> int:
        return round(BAR_WIDTH * n / size)

    ok, bad = cells(done), cells(failed)
    if failed and not bad:
        bad = 1  # a failure is always visible
    busy = min(cells(running) or (1 if running else 0), BAR_WIDTH - ok - bad)
    rest = max(0, BAR_WIDTH - ok - bad - busy)
    return "[" + "#" * ok + "x" * bad + ">" * busy + "." * rest + "]"


def wave_line(wave: dict[str, Any], label: str) -> str:
    """`label [###x>>....] 12/45 done, 1 failed, 5 running, budget 2, running`."""
    done = wave["succeeded"] + wave["skipped"]
    parts = [
        f"{label:<24} {bar(done, wave['failed'], wave['running'], wave['size'])} "
        f"{done + wave['failed']}/{wave['size']} done",
        f"{wave['failed']} failed",
    ]
    if wave["running"]:
        parts.append(f"{wave['running']} running")
    if wave["skipped"]:
        parts.append(f"{wave['skipped']} skipped")
    if wave.get("budget") is not None:
        parts.append(f"budget {wave['budget']}")
    status = wave["status"]
    if status == "pausing" and wave.get("until"):
        status = f"pausing until {wave['until']}"
    elif status == "waiting" and wave.get("gate"):
        status = f"waiting for gate {wave['gate']}"
    parts.append(status)
    return ", ".join(parts)


def fanout_lines(step: dict[str, Any]) -> list[str]:
    fanout = step.get("fanout")
    if not fanout:
        return []
    head = f"      {fanout['total']} items, {fanout['concurrency']} at once"
    return [head, *(f"      {wave_line(w, 'wave ' + w['name'])}" for w in fanout["waves"])]


def last_control(state: dict[str, Any]) -> dict[str, Any]:
    """The latest live-control action (who paused the run), or {} when there is none."""
    last: dict[str, Any] = (state.get("controls") or [{}])[-1]
    return last


class Follower:
    """Prints one line each time a step's status, attempt or compensation changes."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.gates: dict[str, tuple[Any, ...]] = {}
        self.waves: dict[tuple[str, str], tuple[tuple[Any, ...], float]] = {}
        self.paused = False

    def update(self, state: dict[str, Any]) -> None:
        # In the order things happened, not the order of the mapping.
        steps = sorted(
            state.get("steps", {}).items(),
            key=lambda kv: (kv[1].get("finished_at") or kv[1].get("started_at") or "", kv[0]),
        )
        for sid, step in steps:
            self._waves(sid, step)  # before the step's own line, which may be its end
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
        if bool(state.get("paused")) != self.paused:
            self.paused = bool(state.get("paused"))
            last = last_control(state)
            word = "paused" if self.paused else "resumed"
            out(f"  run {word}" + (f" by {last['by']}" if last.get("by") else ""))
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

    def _waves(self, sid: str, step: dict[str, Any]) -> None:
        """A wave's line when its status changes, and while it runs, every few seconds."""
        for wave in (step.get("fanout") or {}).get("waves", []):
            if wave["status"] == "pending":
                continue
            key = (
                wave["status"],
                wave["succeeded"],
                wave["failed"],
                wave["skipped"],
                wave["running"],
            )
            seen = self.waves.get((sid, wave["name"]))
            now = time.monotonic()
            if seen is not None:
                if seen[0] == key:
                    continue
                same_status = seen[0][0] == key[0]
                if same_status and now - seen[1] < WAVE_LINE_SECONDS:
                    continue
            self.waves[(sid, wave["name"])] = (key, now)
            out(f"  {wave_line(wave, sid + '/' + wave['name'])}")


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
    body = []
    for sid, step in state["steps"].items():
        body.append(step_line(sid, step))
        body += fanout_lines(step)
    if state.get("paused"):
        last = last_control(state)
        body.append(
            f"  paused by {last.get('by')} at {last.get('at')}; "
            f"qlrf-run resume {state['workflow_id']}"
        )
    for gate in state.get("gates", []):
        if gate["status"] == "waiting":
            body += gate_lines(state, gate)
    return "\n".join([*head, *body, summary(state, ui_url)])
