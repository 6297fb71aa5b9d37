"""Every gate waiting for a decision, and every run in line for a lock, across runs,
in one visibility call.

Each run publishes its gates in its memo and their ids in the `QlrfWaiting` search
attribute (a lock it waits for as `lock:KEY`), so no run is asked and no worker is
needed: a thousand waiting gates are one paged list call.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from runner.client.state import NAME_KEY
from runner.contract import LIVE_MEMO, WAITING_ATTRIBUTE, WORKFLOW_TYPE, lock_wait_text


async def pending(client: Client) -> list[dict[str, Any]]:
    """Every waiting gate across runs, in one visibility call: each run publishes its gates
    in its memo, so no run is asked and no worker is needed."""
    query = (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' "
        f"AND {WAITING_ATTRIBUTE} IS NOT NULL"
    )
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query):
        memo = await wf.memo()
        picture = memo.get(LIVE_MEMO) or {}
        name = wf.typed_search_attributes.get(NAME_KEY)
        for gate in picture.get("gates", []):
            if gate.get("status") != "waiting":
                continue
            rows.append(
                {
                    "run_id": wf.id,
                    "name": name,
                    "gate": gate["gate"],
                    "message": gate["message"],
                    "approvers": gate["approvers"],
                    "min_approvals": gate["min_approvals"],
                    "approvals": gate["approvals"],
                    "waiting_since": gate["waiting_since"],
                    "deadline": gate["deadline"],
                }
            )
        for hold in picture.get("locks", []):
            if hold.get("status") == "held":
                continue
            rows.append(_lock_row(wf.id, name, hold))
    return rows


def _lock_row(run_id: str, name: Any, hold: dict[str, Any]) -> dict[str, Any]:
    """A run (or one of its steps) in line for a lock, as `pending` shows it."""
    holder = hold.get("holder") or {}
    return {
        "run_id": run_id,
        "name": name,
        "lock": hold.get("key"),
        "step": hold.get("step"),
        "message": lock_wait_text(hold.get("key"), holder),
        "holder": holder or None,
        "position": hold.get("position"),
        "waiting_since": hold.get("since"),
    }
