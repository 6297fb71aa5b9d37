"""Waiting for an approval gate, and building decisions, as clients send them."""

from __future__ import annotations

from typing import Any

from tests.helpers.waiting import eventually_async

# A runbook with one gate `review` (quorum as %(quorum)d) and a step after it.
GATE_HEAD = "apiVersion: qlrf/v1\nkind: Task\nname: gated\n"
GATE = (
    GATE_HEAD
    + """
inputs:
  batch_size: {type: integer, default: 1}
  region: {type: string, default: eu-west-1}
steps:
  - id: review
    type: approval
    with:
      message: "run with batch {{ inputs.batch_size }}?"
      approvers: [alice, bob, tester]
      min_approvals: %(quorum)d
      modifiable: [batch_size]
  - id: act
    type: shell
    with: {command: [echo, "batch={{ inputs.batch_size }}"]}
"""
)


async def wait_for_gate(
    handle: Any, gate: str = "review", status: str = "waiting"
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        state: dict[str, Any] = await handle.query("state")
        found = any(g["gate"] == gate and g["status"] == status for g in state["gates"])
        return state if found else None

    return await eventually_async(
        reached, f"gate {gate} became {status}", poll=0.1, ignoring=(Exception,)
    )


async def history_length(handle: Any) -> int:
    return len((await handle.fetch_history()).events)


def decision(kind: str, by: str, **extra: Any) -> dict[str, Any]:
    return {"gate": "review", "decision": kind, "by": by, "comment": "", **extra}


def gated_runbook(name: str, message: str = "go ahead?", approvers: str = "[bob]") -> str:
    """A Task whose approval gate waits for `approvers` before one shell step."""
    return (
        "apiVersion: qlrf/v1\nkind: Task\n"
        f"name: {name}\nsteps:\n"
        "  - id: review\n    type: approval\n"
        f'    with: {{message: "{message}", approvers: {approvers}}}\n'
        "  - id: act\n    type: shell\n    with: {command: [echo, acted]}\n"
    )
