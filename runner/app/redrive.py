"""Redriving a failed, cancelled or timed-out run as RUN.r<N>: what succeeded is kept,
the rest runs again. What it keeps is said here for people; the worker derives it
again from the run store, and never takes it from the request (docs/redrive.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowHandle

from runner.app.context import Context, connected
from runner.client import redrive as redriving
from runner.client.connect import task_queue
from runner.client.runs import start
from runner.contract.messages import JsonObject
from runner.local.postgres import store_enabled
from runner.plan import redrive as plan_redrive


@dataclass
class RedriveRequest:
    run: str
    user: str
    start_from: str | None = None  # run again from this step on
    reapprove: bool = False  # gates decided before ask again


@dataclass
class Redriven:
    ctx: Context
    handle: WorkflowHandle[Any, Any]
    redrive_of: str  # the run continued (the latest of its chain)
    status: str  # how that run ended
    kept: list[str]  # steps whose outcome is kept
    again: list[str]  # steps that run again
    items_kept: dict[str, int]  # fan-out step -> items that succeeded before
    source: str  # where the outcomes came from: the run store or Temporal
    notes: list[str] = field(default_factory=list)  # for the person, before anything else
    latest: str | None = None  # the run was redriven already: this is the one continued

    def to_json(self) -> JsonObject:
        return {
            "run_id": self.handle.id,
            "redrive_of": self.redrive_of,
            "kept": self.kept,
            "again": self.again,
            "items_kept": self.items_kept,
            "source": self.source,
        }


async def redrive(ask: RedriveRequest) -> Redriven:
    ctx = await connected()
    continued = await redriving.latest(ctx.client, ask.run)
    original = await redriving.original_of(ctx.client, continued)
    assert original.plan is not None
    kept = plan_redrive.carried_over(original, ask.start_from, ask.reapprove)
    handle, _ = await start(
        ctx.client,
        original.plan,
        original.inputs,
        ask.user,
        workflow_id=plan_redrive.redrive_id(original.run_id),
        definition_sha256=original.definition_sha256,
        definition_file=original.definition_file,
        record=store_enabled(),
        task_queue=task_queue(),
        redrive=plan_redrive.request(original.run_id, ask.start_from, ask.reapprove),
        groups=original.groups,
    )
    items_kept: dict[str, int] = {sid: len(keys) for sid, keys in kept["items"].items()}
    for sid in kept.get("paged") or ():
        # A fan-out from a file: the worker leaves out, by the store, what was done.
        items_kept[sid] = len(original.items.get(sid) or ())
    return Redriven(
        ctx,
        handle,
        original.run_id,
        original.status,
        sorted(kept["steps"]),
        [n.id for n in original.plan.nodes if n.id not in kept["steps"]],
        items_kept,
        original.source,
        list(original.notes),
        continued if continued != ask.run else None,
    )
