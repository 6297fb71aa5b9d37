"""What a redrive keeps from the run it continues (docs/redrive.md). Pure.

The original's outcomes (each step's status and output, and each fan-out's items
that succeeded) come from the run store, else from Temporal's final state of the
run (runner/steps/redrive_source.py). Both the CLI, to say what a redrive will do,
and the worker, which decides it (a run's `redrive` input is never trusted as
sent), compute the same thing from them here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from runner.contract.messages import Inputs, JsonObject
from runner.errors import UsageError
from runner.plan.model import Plan
from runner.plan.waves import OUTPUT_ITEMS, item_names

REDRIVABLE = ("failed", "cancelled", "timed_out", "terminated")


class Outcome(TypedDict):
    """How a step of the original ended: its status (`compensated` when it was undone)."""

    status: str | None
    output: Any


class StepShape(TypedDict):
    """What deciding a redrive needs of one main step of the plan."""

    id: str
    needs: list[str]
    approval: bool
    fanout: bool
    paged: bool  # a fan-out from a file


class Kept(TypedDict):
    """What a redrive keeps of the run it continues."""

    of: str
    steps: dict[str, Any]  # step id -> its output, for the steps that succeeded
    items: dict[str, list[str]]  # fan-out step id -> the keys of the items that succeeded
    paged: NotRequired[list[str]]  # fan-outs from a file: the worker reads theirs


# A run's `redrive` input: which run it continues and how ("from" is a keyword).
RedriveAsk = TypedDict("RedriveAsk", {"of": str, "from": str | None, "reapprove": bool})
_SUFFIX = re.compile(r"\.r(\d+)$")


@dataclass
class Original:
    run_id: str
    status: str
    plan: Plan | None  # None when only its hash is known (the worker needs no more)
    plan_hash: str
    inputs: Inputs
    groups: dict[str, list[str]] | None
    definition_sha256: str
    definition_file: str
    steps: dict[str, Outcome] = field(default_factory=dict)
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


def status_refusal(run: str, status: str) -> str | None:
    """Why a run of this status cannot be redriven; None when it can."""
    if status == "running":
        return (
            f"run {run} is still running; redrive continues a run that ended failed, "
            "cancelled or timed out (cancel it first with `qlrf-run cancel`)"
        )
    if status not in REDRIVABLE:
        return f"run {run} {status}: there is nothing to redrive"
    return None


def outcomes_from_state(original: Original, state: JsonObject) -> None:
    """Fill in the original's outcomes from its final state (Temporal's memo)."""
    for sid, step in (state.get("steps") or {}).items():
        status_of = step.get("status")
        if step.get("compensation"):
            status_of = "compensated"
        original.steps[sid] = {"status": status_of, "output": step.get("output")}
        output = step.get("output")
        if isinstance(output, dict) and "items" in output and "waves" in output:
            listed = output.get("items") or []
            if len(listed) < output.get("succeeded", 0) + output.get("failed", 0):
                original.unnamed_items.append(sid)
                continue
            original.items[sid] = sorted(
                {
                    name
                    for i in listed
                    if i.get("status") == "succeeded"
                    for name in item_names(i["item"])
                }
            )


def shape(plan: Plan) -> list[StepShape]:
    """What deciding a redrive needs of a plan: each main step's id, its needs, whether
    it is a gate, a fan-out, a fan-out from a file. Small enough to send to a worker."""
    return [
        {
            "id": node.id,
            "needs": list(node.needs),
            "approval": node.type == "approval",
            "fanout": node.fanout is not None,
            "paged": node.fanout is not None and is_paged(node.fanout.foreach),
        }
        for node in plan.nodes
    ]


def downstream(steps: list[StepShape], step: str) -> set[str]:
    """STEP and every step that needs it, directly or not (`steps` as `shape` gives)."""
    known = {s["id"] for s in steps}
    if step not in known:
        raise UsageError(
            f"--from {step}: the run has no step {step!r}; its steps are "
            + ", ".join(sorted(known))
        )
    found = {step}
    changed = True
    while changed:
        changed = False
        for node in steps:
            if node["id"] not in found and any(n in found for n in node["needs"]):
                found.add(node["id"])
                changed = True
    return found


def is_paged(foreach: Any) -> bool:
    """A fan-out from a file (`foreach: {from_file: ...}`)."""
    return isinstance(foreach, dict) and "from_file" in foreach


def keep(
    original: Original, steps: list[StepShape], start_from: str | None, reapprove: bool
) -> Kept:
    """What the new run keeps: `{"of", "steps": {id: output}, "items": {id: [keys]}}`,
    for a plan of this shape (the redrive's own, which is the original's)."""
    again = downstream(steps, start_from) if start_from else set()
    kept: dict[str, Any] = {}  # id -> output
    items: dict[str, list[str]] = {}
    paged: list[str] = []
    for node in steps:  # `finally` steps always run again
        sid = node["id"]
        if sid in again or (reapprove and node["approval"]):
            continue
        outcome = original.steps.get(sid)
        if outcome is not None and outcome["status"] == "succeeded":
            kept[sid] = outcome["output"]
        elif node["paged"]:
            # Its done items can be 100,000 names: the worker reads them from the store.
            paged.append(sid)
        elif node["fanout"] and original.items.get(sid):
            items[sid] = sorted(set(original.items[sid]))
    found: Kept = {"of": original.run_id, "steps": kept, "items": items}
    if paged:
        found["paged"] = paged
    return found


def carried_over(original: Original, start_from: str | None, reapprove: bool) -> Kept:
    """What a redrive of `original` keeps (for the CLI, to say so before it starts)."""
    assert original.plan is not None
    return keep(original, shape(original.plan), start_from, reapprove)


def redrive_id(run: str) -> str:
    """The one id a redrive of `run` has: RUN.r1, and RUN.r<N+1> for RUN.r<N>. Fixed, so
    that two redrives of one run at once cannot both start (the second finds the id
    taken)."""
    match = _SUFFIX.search(run)
    if match is None:
        return f"{run}.r1"
    return f"{run[: match.start()]}.r{int(match.group(1)) + 1}"


def request(original: str, start_from: str | None, reapprove: bool) -> RedriveAsk:
    """A run's `redrive` input: which run it continues and how. What it keeps, the
    worker derives from the store (or Temporal) itself."""
    return {"of": original, "from": start_from, "reapprove": bool(reapprove)}
