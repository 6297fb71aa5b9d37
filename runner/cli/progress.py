"""A run's state for people: progress lines, the status table, the closing summary.

Everything here builds rich Text, styled by what it says (console.STYLES); the
console decides whether the styles become colour.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.text import Text

from runner.cli.console import STYLES
from runner.cli.events import Event, lock_text, short
from runner.contract.state import (
    ControlJson,
    GateView,
    RunView,
    StepView,
    WaveJson,
    error_text,
)
from runner.contract.vocab import GateStatus, RunStatus, StepStatus
from runner.plan.waves import item_key
from runner.store.evidence import provenance_line
from runner.times import between, human_duration, human_until, parse

STEP_WIDTH = 22
BAR_WIDTH = 24
FAILED_ITEMS_NAMED = 20

WORDS = {
    "succeeded": "ok",
    "failed": "FAILED",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "running": "running",
    "waiting": "waiting",
    "pending": "pending",
}


def _style(key: str) -> str:
    return STYLES.get(key, "")


def event_lines(event: Event, started_at: str | None) -> list[Text]:
    """`  +12.3s  deploy                 ok in 1.2s`, and the commands it suggests."""
    offset = between(started_at, event.at) if event.at else None
    when = f"+{human_duration(offset)}" if offset is not None else ""
    line = Text(f"  {when:>8}  ")
    line.append(f"{event.subject:<{STEP_WIDTH}} ", style="bold")
    line.append(event.text, style=_style(event.style))
    lines = [line]
    for hint in event.hints:
        lines.append(Text(f"  {'':>8}  {'':<{STEP_WIDTH}} {hint}", style=_style("hint")))
    return lines


def bar(done: int, failed: int, running: int, size: int) -> Text:
    """`[###x>>.....]`: succeeded or skipped, failed, running, still to do."""
    if size <= 0:
        return Text("[" + " " * BAR_WIDTH + "]")

    def cells(n: int) -> int:
        return round(BAR_WIDTH * n / size)

    ok, bad = cells(done), cells(failed)
    if failed and not bad:
        bad = 1  # a failure is always visible
    busy = min(cells(running) or (1 if running else 0), BAR_WIDTH - ok - bad)
    rest = max(0, BAR_WIDTH - ok - bad - busy)
    return Text.assemble(
        "[",
        ("#" * ok, _style("succeeded")),
        ("x" * bad, _style("failed")),
        (">" * busy, _style("running")),
        "." * rest,
        "]",
    )


def wave_line(wave: WaveJson, label: str, now: datetime | None = None) -> Text:
    """`label [###x>>....] 12/45 done, 1 failed, 5 running, budget 2, running`."""
    done = (wave.get("succeeded") or 0) + (wave.get("skipped") or 0)
    failed, running, size = wave.get("failed") or 0, wave.get("running") or 0, wave["size"]
    line = Text(f"{label:<{STEP_WIDTH}} ")
    line.append_text(bar(done, failed, running, size))
    parts = [f" {done + failed}/{size} done", f"{failed} failed"]
    if running:
        parts.append(f"{running} running")
    if wave.get("skipped"):
        parts.append(f"{wave['skipped']} skipped")
    if wave.get("budget") is not None:
        parts.append(f"budget {wave['budget']}")
    line.append(", ".join(parts) + ", ")
    status = wave.get("status", "pending")
    shown = status
    if status == "pausing" and wave.get("until"):
        shown = f"pausing, next wave {human_until(wave['until'], now)}"
    elif status == "waiting" and wave.get("gate"):
        shown = f"waiting for gate {wave['gate']}"
    line.append(shown, style=_style(status))
    return line


def step_line(sid: str, step: StepView) -> Text:
    status = step.status
    line = Text(f"  {sid:<{STEP_WIDTH}} ")
    # One space after the widest word ("cancelled"), so nothing runs into it.
    line.append(f"{WORDS.get(status, status):<9} ", style=_style(status))
    parts = []
    if step.attempts:
        parts.append(f"attempt {step.attempts}")
    took = between(step.started_at, step.finished_at)
    if took is not None and status != StepStatus.SKIPPED:
        parts.append(human_duration(took))
    if step.error:
        parts.append(error_text(step.error))
    elif step.reason and status in (StepStatus.SKIPPED, StepStatus.CANCELLED, StepStatus.WAITING):
        parts.append(f"({step.reason})")
    elif step.reason and status == StepStatus.SUCCEEDED:
        parts.append(f"kept ({step.reason})")  # a redrive's step that did not run again
    comp = step.compensation
    if comp:
        parts.append(f"[compensation {comp['status']}]")
    line.append("  ".join(parts))
    return line


def fanout_lines(step: StepView, now: datetime | None = None) -> list[Text]:
    fanout = step.fanout
    if fanout is None:
        return []
    at_once = fanout.concurrency
    head = f"      {fanout.total} items" + (f", {at_once} at once" if at_once else "")
    lines = [Text(head)]
    for wave in fanout.waves:
        line = Text("      ")
        line.append_text(wave_line(wave, "wave " + wave["name"], now))
        lines.append(line)
    for failed in fanout.failed_items[-5:]:
        lines.append(
            Text(
                f"      failed {failed['item']}: {error_text(failed.get('error'))}",
                style=_style("failed"),
            )
        )
    return lines


def gate_lines(state: RunView, gate: GateView, now: datetime) -> list[Text]:
    who = ", ".join(gate.approvers) or "anyone"
    count = f"{len(gate.approvals)}/{gate.min_approvals}"
    head = Text("  ")
    head.append(f"gate {gate.gate}", style="bold")
    head.append(f" waits for {who} ({count} approvals)", style=_style("waiting"))
    head.append(f", deadline {human_until(gate.deadline, now)}: {gate.message}")
    modifiable = gate.modifiable
    also = f"; modify --set NAME=VALUE for {', '.join(modifiable)}" if modifiable else ""
    hint = Text(
        f"      qlrf-run approve {state.run_id} {gate.gate}   (or reject{also})",
        style=_style("hint"),
    )
    return [head, hint]


def last_control(state: RunView) -> ControlJson:
    """The latest live-control action (who paused the run), or {} when there is none."""
    return state.controls[-1] if state.controls else {}


def failed_items(state: RunView) -> list[tuple[str, str, str]]:
    """(step, item, reason) of every fan-out item that failed, from the steps' outputs."""
    found = []
    for sid, step in state.steps.items():
        output = step.output
        items = output.get("items") if isinstance(output, dict) else None
        if isinstance(items, list):
            for entry in items:
                if isinstance(entry, dict) and entry.get("status") == "failed":
                    # An inventory's host by its name, as progress and `skip` name it.
                    name = item_key(entry.get("item"), named=True)
                    found.append((sid, short(name, 80), error_text(entry.get("error"))))
        elif step.fanout is not None and step.fanout.failed_items:
            for entry in step.fanout.failed_items:
                found.append((sid, str(entry.get("item")), error_text(entry.get("error"))))
    return found


def summary(state: RunView, ui_url: str | None = None) -> list[Text]:
    steps = state.steps
    counts: dict[str, int] = {}
    for step in steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    status = state.status
    took = between(state.started_at, state.finished_at)
    head = Text(f"run {state.run_id} ")
    failing = status if status != RunStatus.TIMED_OUT else "failed"
    head.append(status, style=_style(failing) + " bold")
    if took is not None:
        head.append(f" in {human_duration(took)}")
    head.append(f" (steps: {shown})")
    lines = [head]
    run_error = state.error
    if run_error:
        lines.append(Text(f"  error: {error_text(run_error)}", style=_style("failed")))
    for sid, step in steps.items():
        if step.status != StepStatus.FAILED or not step.error:
            continue
        if run_error and step.error["message"] in run_error["message"]:
            continue
        lines.append(Text(f"  step {sid} failed: {error_text(step.error)}", _style("failed")))
    items = failed_items(state)
    if items:
        lines.append(Text(f"  {len(items)} item(s) failed:", style=_style("failed")))
        for sid, item, reason in items[:FAILED_ITEMS_NAMED]:
            lines.append(Text(f"    {sid} [{item}]: {reason}"))
        if len(items) > FAILED_ITEMS_NAMED:
            lines.append(
                Text(
                    f"    and {len(items) - FAILED_ITEMS_NAMED} more: "
                    f"qlrf-run status {state.run_id} --format json",
                    style=_style("hint"),
                )
            )
    outputs = state.outputs
    if isinstance(outputs, dict):
        for key, value in outputs.items():
            lines.append(Text(f"  output {key} = {short(value, 2000)}"))
    elif outputs is not None:
        lines.append(Text(f"  outputs = {short(outputs, 2000)}"))
    if ui_url:
        lines.append(Text(f"  {workflow_link(ui_url, state.run_id)}", style=_style("hint")))
    return lines


def workflow_link(ui_url: str, workflow_id: str) -> str:
    from urllib.parse import quote

    return f"{ui_url}/namespaces/default/workflows/{quote(workflow_id, safe='')}"


def status_lines(state: RunView, ui_url: str | None = None) -> list[Text]:
    now = datetime.now(UTC)
    status = state.status
    head = Text(f"{state.name} ({state.kind})  ")
    head.append(status, style=_style(status) + " bold")
    started = parse(state.started_at)
    when = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "?"
    took = between(state.started_at, state.finished_at) if state.finished_at else None
    lines = [
        head,
        Text(
            f"  run {state.run_id}  started by {state.started_by}{_unverified(state)}"
            f" at {when}" + (f", took {human_duration(took)}" if state.finished_at else "")
        ),
    ]
    if state.provenance is not None:
        lines.append(Text(f"  from {provenance_line(state.provenance)}"))
    if state.policy is not None:
        rules = ", ".join(str(r.get("index")) for r in state.policy.get("rules") or [])
        lines.append(
            Text(
                f"  policy sha256 {str(state.policy.get('sha256'))[:12]}: "
                + (f"rules {rules} apply" if rules else "no rule applies")
                + ("; a proposal" if state.policy.get("proposal") else "")
            )
        )
    if state.published_because:
        age = between(state.published_at, now.isoformat())
        when = f" {human_duration(age)} ago" if age is not None else ""
        lines.append(
            Text(
                f"  as the run last published it{when}: {state.published_because}",
                style=_style("paused"),
            )
        )
    for sid, step in state.steps.items():  # in the plan's order
        lines.append(step_line(sid, step))
        lines += fanout_lines(step, now)
    if state.paused:
        last = last_control(state)
        lines.append(
            Text(
                f"  paused by {last.get('by')} {human_until(last.get('at'), now)}; "
                f"qlrf-run resume {state.run_id}",
                style=_style("paused"),
            )
        )
    for gate in state.gates:
        if gate.status == GateStatus.WAITING:
            lines += gate_lines(state, gate, now)
    lines += lock_lines(state)
    return [*lines, *summary(state, ui_url)]


def lock_lines(state: RunView) -> list[Text]:
    """The run's own locks (a step's show on its line)."""
    lines = []
    for hold in state.locks:
        if hold.step is None:
            style = "waiting" if hold.status != "held" else "running"
            verb = "" if hold.status == "held" else "is "
            lines.append(Text(f"  the run {verb}{lock_text(hold)}", style=_style(style)))
    return lines


def _unverified(state: RunView) -> str:
    """ " (unverified)" after a name no signature proves (claimed mode, docs/trust.md)."""
    if state.identity is not None and not state.identity.started_by_verified:
        return " (unverified)"
    return ""
