"""What a run publishes outside its history, for when no worker can answer a query.

- `QlrfWaiting` (a search attribute) lists the waiting gates, so finding them is
  one visibility query.
- The memo `live` holds a small picture of the run: each step's status, fan-out
  waves, the gates with who may decide, the current activity, so `status` and
  `pending` answer from visibility without a worker. Each write is a history event
  and a visibility update, which cost a third of the interpreter's throughput when
  made on every change (bench/README.md). So a gate, a decision or a pause is
  written at once, and other changes gather for up to PUBLISH_SECONDS (a timer,
  only while something is left unwritten).
- The memo `state` holds the full final state once the run has closed.
- The Temporal UI's current details say what the run is doing: the running
  steps, or the waiting gate with its approvers and the command that decides it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from runner.contract import FINAL_MEMO, LIVE_MEMO, MEMO_LIMIT, WAITING_ATTRIBUTE, payload_size
from runner.contract.state import RunView
from runner.engine.gates import GateDesk
from runner.engine.run_state import RunState
from runner.times import iso

WAITING_KEY = SearchAttributeKey.for_keyword_list(WAITING_ATTRIBUTE)
# An error in the UI's current details: enough to recognise it.
ERROR_TEXT = 300
LIVE_LIMIT = 256 * 1024
# The longest a change (a step's start or end) waits to be written to the memo.
PUBLISH_SECONDS = 5.0
# Runs from PUBLISH_WITH_TASKS on publish a change once PUBLISH_SECONDS have passed, in
# a workflow task the run has anyway (a step's end, a decision); a timer of this long
# only keeps the picture from going stale while nothing else happens (a long step). A
# timer that fired would cost every run a workflow task of its own every 5 s.
QUIET_SECONDS = 15.0


def waiting_gates(gates: list[str]) -> None:
    workflow.upsert_search_attributes([WAITING_KEY.value_set(gates)])


def waiting(desk: GateDesk, run: RunState, *, changed_only: bool = False) -> None:
    """Publish what the run waits for: its gates, and the locks it queues at (`lock:KEY`).

    A gate opening or closing always publishes (as runs have since gates existed, so
    their histories replay); a lock's news only when the list changed.
    """
    found = desk.waiting() + run.lock_waits()
    if changed_only and found == run.waiting_published:
        return
    run.waiting_published = found
    waiting_gates(found)


def final_state(state: dict[str, Any], live: dict[str, Any] | None = None) -> None:
    """The final state in the memo; with `live`, the last picture in the same upsert."""
    if payload_size(state) > MEMO_LIMIT:
        for step in state["steps"].values():
            step["output"] = "(left out: the final state was too large for the memo)"
    memo = {FINAL_MEMO: state} if live is None else {LIVE_MEMO: live, FINAL_MEMO: state}
    workflow.upsert_memo(memo)


class Publisher:
    """Keeps the memo `live` and the UI's current details up to date."""

    def __init__(self, run: RunState, desk: GateDesk, view: Callable[[], RunView]) -> None:
        self.run = run
        self.desk = desk
        self.view = view  # the run's RunView, made afresh (interpreter.py)
        self.published = -1  # the run's version in the memo
        self.detailed = -1  # the run's version in the current details
        self.published_at: datetime | None = None
        self.with_tasks = False  # PUBLISH_WITH_TASKS (interpreter.py)

    def picture(self) -> dict[str, Any]:
        picture = self.view().summary(iso(workflow.now()))
        if payload_size(picture) > LIVE_LIMIT:
            # Thousands of steps: their statuses only.
            picture["steps"] = {sid: {"status": s["status"]} for sid, s in picture["steps"].items()}
        return picture

    def details(self) -> str:
        """Markdown for the Temporal UI: what the run is doing now."""
        run = self.run
        info = workflow.info()
        lines = [
            f"**{run.plan.kind} {run.plan.name}**: {run.status}"
            + (" (paused)" if run.paused else "")
        ]
        for gate in self.desk.gates.values():
            if gate.status == "waiting":
                who = ", ".join(gate.approvers) or "anyone"
                lines.append(
                    f"- waiting at gate `{gate.gate}` for {who} "
                    f"({len(gate.approvals)}/{gate.min_approvals}) until {iso(gate.deadline)}: "
                    f"{gate.message}\n  `qlrf-run approve {info.workflow_id} {gate.gate}`"
                )
        for hold in run.locks.values():
            if hold.status != "held":
                who = f"step `{hold.step}`" if hold.step else "the run"
                lines.append(f"- {who} is {hold.waiting_text()}")
        running = [sid for sid, s in run.steps.items() if s.status == "running"]
        if running:
            lines.append("- running: " + ", ".join(f"`{sid}`" for sid in running[:20]))
        if run.error:
            lines.append(f"- error: {run.error['type']}: {run.error['message'][:ERROR_TEXT]}")
        return "\n".join(lines)

    async def loop(self) -> None:
        """Keep the current details and the memo up to date, until the run ends."""
        await asyncio.gather(self._details(), self._memo())

    async def _details(self) -> None:
        # Current details cost no command: they follow every change.
        while True:
            await workflow.wait_condition(lambda: self.run.version != self.detailed)
            self.detailed = self.run.version
            workflow.set_current_details(self.details())

    async def _memo(self) -> None:
        run = self.run
        while True:
            await workflow.wait_condition(lambda: run.version != self.published)
            urgent = run.urgent_version > self.published
            if self.with_tasks and run.urgent_version <= max(self.published, 0):
                # The start's memo holds the client's first picture: a run that ends
                # within PUBLISH_SECONDS publishes only its last.
                last = self.published_at or run.started_at
                due = last + timedelta(seconds=PUBLISH_SECONDS)
                if workflow.now() < due:

                    def publishable(due: datetime = due) -> bool:
                        urgent = run.urgent_version > max(self.published, 0)
                        return urgent or workflow.now() >= due

                    with contextlib.suppress(asyncio.TimeoutError):
                        await workflow.wait_condition(
                            publishable,
                            timeout=timedelta(seconds=QUIET_SECONDS),
                            timeout_summary="qlrf plumbing: publish the run's picture",
                        )
            elif not urgent and self.published_at is not None:
                left = self.published_at + timedelta(seconds=PUBLISH_SECONDS) - workflow.now()
                if left > timedelta(0):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await workflow.wait_condition(
                            lambda: run.urgent_version > self.published,
                            timeout=left,
                            timeout_summary="qlrf plumbing: publish the run's picture",
                        )
            self.write_memo()

    def write_memo(self) -> None:
        self.published = self.run.version
        self.published_at = workflow.now()
        workflow.upsert_memo({LIVE_MEMO: self.picture()})

    def publish(self) -> None:
        """Everything, now (at the run's end)."""
        self.write_memo()
        self.detailed = self.run.version
        workflow.set_current_details(self.details())

    def last_picture(self) -> dict[str, Any]:
        """The picture at the run's end, for final_state to write with the final state
        (one upsert for both); the current details follow too."""
        self.published = self.run.version
        self.published_at = workflow.now()
        self.detailed = self.run.version
        workflow.set_current_details(self.details())
        return self.picture()
