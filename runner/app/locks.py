"""Every lock held or waited for, from visibility: one list call, no worker needed.

A lock's workflow (qlrf.Lock) runs exactly while someone holds or waits for its
key, and publishes its holder and first waiters in its memo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.app.context import Context
from runner.contract import LOCK_ID_PREFIX, LOCK_MEMO, LOCK_WORKFLOW_TYPE
from runner.contract.messages import JsonObject
from runner.contract.wire import LockHolder


@dataclass
class LockRow:
    key: str
    holder: LockHolder | None
    waiters: list[LockHolder] = field(default_factory=list)  # the first few, in order
    waiting: int = 0  # all of them

    def to_json(self) -> JsonObject:
        return {
            "key": self.key,
            "holder": self.holder,
            "waiters": self.waiters,
            "waiting": self.waiting,
        }


async def locks(ctx: Context) -> list[LockRow]:
    """One row per lock key in use: its holder, and its waiters in order."""
    query = f"WorkflowType = '{LOCK_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
    rows: list[LockRow] = []
    async for wf in ctx.client.list_workflows(query):
        memo = await wf.memo()
        picture: Any = memo.get(LOCK_MEMO)
        if not isinstance(picture, dict):
            picture = {}
        key = wf.id[len(LOCK_ID_PREFIX) :] if wf.id.startswith(LOCK_ID_PREFIX) else wf.id
        rows.append(
            LockRow(
                key,
                picture.get("holder"),
                list(picture.get("waiters") or []),
                int(picture.get("waiting") or 0),
            )
        )
    return sorted(rows, key=lambda row: row.key)
