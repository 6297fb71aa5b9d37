"""What a step printed: while it runs, from its heartbeats; once it ended, from its
output in the run's state, or from the run store.

A running shell step heartbeats its latest complete lines, numbered (runner/steps/
output.py). `Tail` prints each line once: what it has not printed of a heartbeat,
then, when the step ends, what its final output adds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle

from runner.client.state import Snapshot, attempts_of, decode_heartbeats
from runner.contract.messages import JsonObject
from runner.contract.state import StepView
from runner.contract.vocab import StepStatus


@dataclass
class Printed:
    """One step's (or item's) output as it stands now."""

    status: str  # the step's or item's status; "unknown" when nothing is known yet
    attempt: int | None
    running: bool
    beat: JsonObject | None  # the latest heartbeat of a running attempt
    output: Any = None  # the final output (stdout, stderr, exit_code for shell)
    error: JsonObject | None = None


class Tail:
    """Prints the lines of one stream once each, across heartbeats and the final output."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.printed = 0  # lines of the current attempt printed
        self.last: str | None = None
        self.attempt: int | None = None

    def beat(self, attempt: int | None, lines: int, tail: list[str]) -> None:
        if attempt != self.attempt:
            if self.attempt is not None:
                self.write(f"--- attempt {attempt} ---")
            self.attempt, self.printed, self.last = attempt, 0, None
        first = lines - len(tail) + 1
        if first > self.printed + 1:
            self.write(f"[... {first - self.printed - 1} lines not shown ...]")
        for number, line in enumerate(tail, start=first):
            if number > self.printed:
                self.write(line)
                self.printed, self.last = number, line

    def finish(self, text: str | None, attempt: int | None = None) -> None:
        """The final output of the last attempt: print what has not been printed."""
        if not text:
            return
        if attempt is not None and self.attempt is not None and attempt != self.attempt:
            self.write(f"--- attempt {attempt} ---")
            self.printed, self.last = 0, None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if self.printed == 0:
            rest = lines
        elif not text.startswith("[... "):
            rest = lines[self.printed :]
        else:  # the front was cut: go on after the last line printed
            at = max((i for i, line in enumerate(lines) if line == self.last), default=-1)
            rest = lines[at + 1 :]
        for line in rest:
            self.write(line)


async def printed(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    snap: Snapshot,
    step: str,
    item: str | None,
    stored: Callable[[], Any] | None = None,
) -> Printed:
    """What `step` (or its `item`) has printed so far."""
    found = snap.view.steps.get(step)
    if found is None:
        from runner.errors import QlrfError

        steps = ", ".join(snap.view.steps) or "none"
        raise QlrfError(f"run {handle.id} has no step '{step}' (its steps: {steps})")
    if item is None:
        live = snap.attempts.get(step)
        running = found.status == StepStatus.RUNNING
        result = Printed(
            found.status,
            live.attempt if live else found.attempts,
            running,
            live.heartbeat if live else None,
            found.output,
            dict(found.error) if found.error else None,
        )
    else:
        result = await _item(client, found, item)
    if not result.running and result.output is None and result.error is None and stored:
        # Left out of the state (a large fan-out, a state too large for the memo).
        row = await stored()
        if row is not None:
            result = Printed(row["status"], row["attempt"], False, None, row["output"])
            result.error = row["error"]
    return result


async def _item(client: Client, step: StepView, item: str) -> Printed:
    from runner.plan.waves import item_names

    output = step.output
    if isinstance(output, dict):
        for entry in output.get("items") or []:
            if isinstance(entry, dict) and item in item_names(entry.get("item")):
                return Printed(
                    entry.get("status", "unknown"),
                    None,
                    False,
                    None,
                    entry.get("output"),
                    entry.get("error"),
                )
    for wave in step.fanout.waves if step.fanout is not None else []:
        batch = wave.get("batch")
        if not batch:
            continue
        description = await client.get_workflow_handle(batch).describe()
        attempts = attempts_of(description, items=True)
        await decode_heartbeats(client, description, attempts)
        for live in attempts.values():
            if live.heartbeat is not None and live.heartbeat.get("item") == item:
                return Printed("running", live.attempt, True, live.heartbeat)
    return Printed("unknown", None, step.status == StepStatus.RUNNING, None)
