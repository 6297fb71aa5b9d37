"""`qlrf-run redrive RUN`: continue a run that failed, was cancelled or timed out.

The new run, RUN.r<N>, runs the same pinned plan with the inputs the original ended
with (a modify at a gate included). What succeeded is not done again: its steps
are kept with their recorded outputs, which later steps see in templates, and a
fan-out runs only the items that did not succeed, in waves of their own. A step
whose compensation ran was undone, so it runs again; `finally` steps always run.
`--from STEP` runs STEP and everything downstream of it again; `--reapprove` asks
the approval gates again.

How the original ended comes from the run store (every item's row), else from
Temporal's final state. When Temporal no longer has the run, the store has its
definition and inputs, and the plan is compiled from them again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from runner.client.state import closed_status
from runner.contract import FINAL_MEMO, RunInput
from runner.errors import QlrfError, UsageError
from runner.plan.model import Plan
from runner.plan.waves import OUTPUT_ITEMS, item_names

REDRIVABLE = ("failed", "cancelled", "timed_out", "terminated")
MAX_REDRIVES = 1000


@dataclass
class Original:
    run_id: str
    status: str
    plan: Plan
    inputs: dict[str, Any]
    groups: dict[str, list[str]] | None
    definition_sha256: str
    definition_file: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # status, output
    items: dict[str, list[str]] = field(default_factory=dict)  # succeeded item keys
    source: str = "temporal"
    # Fan-out steps whose succeeded items the source could not name (Temporal's final
    # state lists only the failed items above 1,000): all their items run again.
    unnamed_items: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [
            f"step {sid}: Temporal's final state names only the failed items of a fan-out "
            f"over {OUTPUT_ITEMS}; every item runs again (the run store would say which "
            "succeeded)"
            for sid in self.unnamed_items
        ]


def _refuse_status(run: str, status: str) -> None:
    if status == "running":
        raise QlrfError(
            f"run {run} is still running; redrive continues a run that ended failed, "
            "cancelled or timed out (cancel it first with `qlrf-run cancel`)"
        )
    if status not in REDRIVABLE:
        raise QlrfError(f"run {run} {status}: there is nothing to redrive")


async def from_temporal(client: Client, run: str) -> Original | None:
    handle = client.get_workflow_handle(run)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise QlrfError(f"cannot read run {run} from Temporal: {exc.message}") from None
    if described.status == WorkflowExecutionStatus.RUNNING:
        _refuse_status(run, "running")
    state = await described.memo_value(FINAL_MEMO, default=None)
    status = (state or {}).get("status") or closed_status(described.status)
    _refuse_status(run, status)
    request: RunInput | None = None
    async for event in handle.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        [request] = await client.data_converter.decode(started.input.payloads, [RunInput])
        break
    if request is None:
        return None
    found = Original(
        run,
        status,
        Plan.from_dict(request.plan),
        dict((state or {}).get("inputs") or request.inputs),
        dict(request.groups),
        request.definition_sha256,
        request.definition_file,
    )
    for sid, step in ((state or {}).get("steps") or {}).items():
        status_of = step.get("status")
        if step.get("compensation"):
            status_of = "compensated"
        found.steps[sid] = {"status": status_of, "output": step.get("output")}
        output = step.get("output")
        if isinstance(output, dict) and "items" in output and "waves" in output:
            listed = output.get("items") or []
            if len(listed) < output.get("succeeded", 0) + output.get("failed", 0):
                found.unnamed_items.append(sid)
                continue
            found.items[sid] = sorted(
                {
                    name
                    for i in listed
                    if i.get("status") == "succeeded"
                    for name in item_names(i["item"])
                }
            )
    return found


async def from_store(run: str, original: Original | None) -> Original | None:
    """The original's outcomes from the run store (exact, item by item); with no
    original from Temporal, also its definition and inputs."""
    from runner.local.postgres import database_url, store_enabled
    from runner.store.queries import ended

    if not store_enabled():
        return original
    found = await ended(database_url(), run)
    if found is None:
        return original
    row, (steps, items) = found
    if original is None:
        _refuse_status(run, row["status"])
        original = Original(
            row["workflow_id"],
            row["status"],
            _compiled(row),
            dict(row["inputs"] or {}),
            None,
            row["definition_sha256"] or "",
            row["definition_file"] or "",
        )
    original.steps = steps
    original.items = items
    original.unnamed_items = []  # the store names every item
    original.source = "store"
    return original


def _compiled(row: dict[str, Any]) -> Plan:
    """The plan the run ran, compiled again from the definition the store kept."""
    from runner.pipeline import InvalidRunbook, compile_file

    text = row.get("definition_text")
    if not text:
        raise QlrfError(
            f"run {row['workflow_id']}: Temporal no longer has it and the run store kept "
            "no definition for it, so there is nothing to run again"
        )
    name = Path(row.get("definition_file") or "runbook.yaml").name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        try:
            # The plan does not depend on the inputs' values; the run's own come from
            # its row, as they are, and are never parsed again as `k=v` arguments.
            compiled = compile_file(path, require_inputs=False)
        except InvalidRunbook as exc:
            raise QlrfError(
                f"run {row['workflow_id']}: its kept definition no longer compiles "
                f"({exc.diagnostics[0].message if exc.diagnostics else 'invalid'})"
            ) from None
    if row.get("plan_hash") and compiled.plan.plan_hash != row["plan_hash"]:
        raise QlrfError(
            f"run {row['workflow_id']}: its kept definition compiles to another plan with "
            "this version of qlrf-run; redrive it with the version that started it"
        )
    return compiled.plan


def downstream(plan: Plan, step: str) -> set[str]:
    """STEP and every step that needs it, directly or not."""
    known = {n.id for n in (*plan.nodes, *plan.finally_nodes)}
    if step not in known:
        raise UsageError(
            f"--from {step}: the run has no step {step!r}; its steps are "
            + ", ".join(sorted(n.id for n in plan.nodes))
        )
    found = {step}
    changed = True
    while changed:
        changed = False
        for node in plan.nodes:
            if node.id not in found and any(n in found for n in node.needs):
                found.add(node.id)
                changed = True
    return found


def is_paged(foreach: Any) -> bool:
    """A fan-out from a file (`foreach: {from_file: ...}`)."""
    return isinstance(foreach, dict) and "from_file" in foreach


def carried_over(original: Original, start_from: str | None, reapprove: bool) -> dict[str, Any]:
    """What the new run keeps: `{"of", "steps": {id: output}, "items": {id: [keys]}}`."""
    again = downstream(original.plan, start_from) if start_from else set()
    kept: dict[str, Any] = {}
    items: dict[str, list[str]] = {}
    paged: list[str] = []
    for node in original.plan.nodes:  # `finally` steps always run again
        if node.id in again:
            continue
        if reapprove and node.type == "approval":
            continue
        outcome = original.steps.get(node.id) or {}
        if outcome.get("status") == "succeeded":
            kept[node.id] = outcome.get("output")
        elif node.fanout is not None and is_paged(node.fanout.foreach):
            # Its done items can be 100,000 names: the worker reads them from the store.
            paged.append(node.id)
        elif node.fanout is not None and original.items.get(node.id):
            items[node.id] = sorted(set(original.items[node.id]))
    found: dict[str, Any] = {"of": original.run_id, "steps": kept, "items": items}
    if paged:
        found["paged"] = paged
    return found


async def next_id(client: Client, run: str) -> str:
    """RUN.r1, or the first RUN.r<N> that Temporal does not know yet."""
    for n in range(1, MAX_REDRIVES + 1):
        candidate = f"{run}.r{n}"
        try:
            await client.get_workflow_handle(candidate).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return candidate
            raise QlrfError(f"cannot look up run {candidate}: {exc.message}") from None
    raise QlrfError(f"run {run} was redriven {MAX_REDRIVES} times already")


async def original_of(client: Client, run: str) -> Original:
    found = await from_store(run, await from_temporal(client, run))
    if found is None:
        raise QlrfError(f"no run {run!r} in Temporal or in the run store")
    return found
