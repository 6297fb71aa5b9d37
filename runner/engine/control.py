"""Live control of a run: pause, resume, a fan-out's concurrency, skipping items.

The rules are shared by the `control` Update's validator (which refuses before
anything is written to history) and the handler. Like a gate decision, every
accepted action is recorded with who, when and the comment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runner.engine.run_state import TERMINAL, RunState
from runner.plan.inputs import nul_at
from runner.plan.waves import MAX_CONCURRENCY

if TYPE_CHECKING:
    from runner.engine.campaign import Campaign

# `cancel` records who asked (a signed cancel, in signed mode); the cancel itself is
# Temporal's own request, which the CLI sends once this is accepted.
ACTIONS = ("pause", "resume", "concurrency", "skip", "cancel")
# `skip` in a fan-out from a file: the names travel to every later batch.
MAX_SKIP_NAMES = 1000
MAX_SKIPPED = 10_000
MAX_SKIP_NAME_LENGTH = 1024
# What each action is called in the audit log.
AUDITED_AS = {
    "pause": "run_paused",
    "resume": "run_resumed",
    "concurrency": "concurrency_set",
    "skip": "items_skipped",
    "cancel": "cancel_requested",
}


def fanout_concurrency(wanted: int | None, run_limit: int) -> int:
    """Items at once: the step's own, bounded by the run's and by Temporal's limits."""
    return max(1, min(wanted or run_limit, run_limit, MAX_CONCURRENCY))


def refusal(
    request: Any,
    *,
    run_status: str,
    paused: bool,
    fanout_steps: dict[str, str],  # fan-out step id -> its status
    started: dict[str, Any],  # fan-out step id -> its Campaign, once it has started
    run_limit: int,
) -> str | None:
    """Why `request` cannot be done now, in words for the operator; None if it can."""
    if not isinstance(request, dict):
        return "a control request is a mapping with action and by"
    nul = nul_at(request, "request")
    if nul is not None:
        return f"the {nul} holds a NUL character (\\0), which no record can carry"
    action, by = request.get("action"), request.get("by")
    if action not in ACTIONS:
        return f"unknown action {action!r}; use one of {', '.join(ACTIONS)}"
    if not isinstance(by, str) or not by:
        return "say who you are (`--as USER`, or QLRF_USER)"
    if run_status != "running":
        return f"the run is {run_status}; only a running run can be controlled"
    if action == "cancel":
        return None
    if action == "pause":
        return "the run is already paused" if paused else None
    if action == "resume":
        return None if paused else "the run is not paused"
    step = request.get("step")
    if step not in fanout_steps:
        names = ", ".join(sorted(fanout_steps)) or "none"
        return f"'{step}' is not a fan-out step of this run (fan-out steps: {names})"
    if fanout_steps[step] in TERMINAL:
        return f"step '{step}' is already {fanout_steps[step]}"
    if action == "concurrency":
        value = request.get("concurrency")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return "concurrency must be a whole number of at least 1"
        limit = min(run_limit, MAX_CONCURRENCY)
        if value > limit:
            return f"concurrency {value} is over this run's limit of {limit}"
        return None
    items = request.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        return "name the items to skip"
    campaign = started.get(step)
    if campaign is None:
        return f"step '{step}' has not started, so its items are not known yet; skip once it runs"
    if campaign.paged:
        # Items of a fan-out from a file are named batch by batch, on the worker: a name
        # matching none is not known to be wrong here, and one already run is unaffected.
        if len(items) > MAX_SKIP_NAMES or len(campaign.skipped_names) + len(items) > MAX_SKIPPED:
            return (
                f"skip at most {MAX_SKIP_NAMES} items at once and {MAX_SKIPPED} in all in a "
                "fan-out from a file; take them out of the inventory instead"
            )
        if any(len(name) > MAX_SKIP_NAME_LENGTH for name in items):
            return f"an item name is at most {MAX_SKIP_NAME_LENGTH} characters"
        return None
    indexes, unknown = campaign.indexes(items)
    if unknown:
        return f"no item {', '.join(map(repr, unknown))} in step '{step}'"
    done = [campaign.keys[i] for i in indexes if i < campaign.finished_before]
    if done:
        return f"item {', '.join(map(repr, done))} of step '{step}' has already run"
    return None


async def apply(
    request: dict[str, Any],
    *,
    run: RunState,
    campaigns: Mapping[str, Campaign],
    concurrency_set: dict[str, int],
    audit: Callable[[str, str | None, dict[str, Any]], None],
    at: str | None,
) -> dict[str, Any]:
    """Carry out an accepted control request; returns its record (kept in the state)."""
    action, by = request["action"], request["by"]
    record: dict[str, Any] = {
        "action": action,
        "by": by,
        "verified": bool(request.get("verified")),
        "at": at,
        "comment": request.get("comment") or "",
    }
    campaign = campaigns.get(request.get("step") or "")
    if action in ("pause", "resume"):
        run.paused = action == "pause"
        for running in campaigns.values():
            await running.tell_batch({"paused": run.paused})
    elif action == "cancel":
        pass  # recorded below; Temporal's cancel request follows from the client
    elif action == "concurrency":
        record.update(step=request["step"], concurrency=request["concurrency"])
        concurrency_set[request["step"]] = request["concurrency"]
        if campaign is not None:
            await campaign.set_concurrency(request["concurrency"])
    else:
        assert campaign is not None  # the validator refuses a skip before the start
        record.update(step=request["step"], items=request["items"])
        await campaign.skip(request["items"])
    run.controls.append(record)
    run.touch(urgent=True)
    audit(AUDITED_AS[action], by, {k: v for k, v in record.items() if k != "by"})
    return record
