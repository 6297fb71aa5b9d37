"""Every gate waiting for a decision, and every run in line for a lock, across runs,
in one visibility call.

Each run publishes its gates in its memo and their ids in the `QlrfWaiting` search
attribute (a lock it waits for as `lock:KEY`), so no run is asked and no worker is
needed: a thousand waiting gates are one paged list call.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.app.context import Context
from runner.client.state import NAME_KEY
from runner.contract import LIVE_MEMO, WAITING_ATTRIBUTE, WORKFLOW_TYPE, lock_wait_text
from runner.contract.messages import JsonObject
from runner.contract.state import GateView, LockHolderJson, RunView


@dataclass
class PendingGate:
    run_id: str
    name: str | None  # the runbook's
    gate: GateView

    def to_json(self) -> JsonObject:
        g = self.gate
        return {
            "run_id": self.run_id,
            "name": self.name,
            "gate": g.gate,
            "message": g.message,
            "approvers": g.approvers,
            "min_approvals": g.min_approvals,
            "approvals": g.approvals,
            "waiting_since": g.waiting_since,
            "deadline": g.deadline,
        }


@dataclass
class PendingLock:
    """A run (or one of its steps) in line for a lock."""

    run_id: str
    name: str | None
    lock: str
    step: str | None
    holder: LockHolderJson | None
    position: int | None
    waiting_since: str | None

    @property
    def message(self) -> str:
        return lock_wait_text(self.lock, self.holder or {})

    def to_json(self) -> JsonObject:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "lock": self.lock,
            "step": self.step,
            "message": self.message,
            "holder": self.holder or None,
            "position": self.position,
            "waiting_since": self.waiting_since,
        }


async def pending(ctx: Context) -> list[PendingGate | PendingLock]:
    """Every waiting gate and lock wait across runs, from their published pictures."""
    query = (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' "
        f"AND {WAITING_ATTRIBUTE} IS NOT NULL"
    )
    rows: list[PendingGate | PendingLock] = []
    async for wf in ctx.client.list_workflows(query):
        memo = await wf.memo()
        picture = memo.get(LIVE_MEMO)
        if not isinstance(picture, dict):
            continue
        view = RunView.from_json(picture)
        name = wf.typed_search_attributes.get(NAME_KEY)
        rows += [PendingGate(wf.id, name, gate) for gate in view.waiting_gates()]
        for hold in view.locks:
            if hold.status != "held":
                rows.append(
                    PendingLock(
                        wf.id, name, hold.key, hold.step, hold.holder, hold.position, hold.since
                    )
                )
    return rows
