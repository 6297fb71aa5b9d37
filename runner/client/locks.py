"""Every lock held or waited for, from visibility: one list call, no worker needed.

A lock's workflow (qlrf.Lock) runs exactly while someone holds or waits for its
key, and publishes its holder and first waiters in its memo.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from runner.contract import LOCK_ID_PREFIX, LOCK_MEMO, LOCK_WORKFLOW_TYPE


async def locks(client: Client) -> list[dict[str, Any]]:
    """One row per lock key in use: its holder, and its waiters in order."""
    query = f"WorkflowType = '{LOCK_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query):
        memo = await wf.memo()
        picture = memo.get(LOCK_MEMO) or {}
        key = wf.id[len(LOCK_ID_PREFIX) :] if wf.id.startswith(LOCK_ID_PREFIX) else wf.id
        rows.append(
            {
                "key": key,
                "holder": picture.get("holder"),
                "waiters": picture.get("waiters") or [],
                "waiting": picture.get("waiting", 0),
            }
        )
    return sorted(rows, key=lambda row: row["key"])
