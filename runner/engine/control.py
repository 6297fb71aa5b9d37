"""Live control of a run: pause, resume, a fan-out's concurrency, skipping items.

The rules are shared by the `control` Update's validator (which refuses before
anything is written to history) and the handler. Like a gate decision, every
accepted action is recorded with who, when and the comment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runner.contract.messages import ControlRequest
from runner.contract.state import ControlJson
from runner.contract.vocab import AUDITED_CONTROL, ControlAction
from runner.engine.run_state import TERMINAL, RunState
from runner.plan.waves import MAX_CONCURRENCY

if TYPE_CHECKING:
    from runner.engine.campaign import Campaign

# `skip` in a fan-out from a file: the names travel to every later batch.
MAX_SKIP_NAMES = 1000
MAX_SKIPPED = 10_000
MAX_SKIP_NAME_LENGTH = 1024


def fanout_concurrency(wanted: int | None, run_limit: int) -> int:
    """Items at once: the step's own, bounded by the run's and by Temporal's limits."""
    return max(1, min(wanted or run_limit, run_limit, MAX_CONCURRENCY))


def refusal(
    request: ControlRequest,
    *,
    run_status: str,
    paused: bool,
    fanout_steps: dict[str, str],  # fan-out step id -> its status
    started: dict[str, Any],  # fan-out step id -> its Campaign, once it has started
    run_limit: int,
) -> str | None:
    """Why `request` cannot be done now, in words for the operator; None if it can. What
    does not read as a control request at all is refused by ControlRequest.parse."""
    action, by = request.action, request.by
    if not by:
        return "say who you are (`--as USER`, or QLRF_USER)"
    if run_status != "running":
        return f"the run is {run_status}; only a running run can be controlled"
    if action == ControlAction.CANCEL:
        return None
    if action == ControlAction.PAUSE:
        return "the run is already paused" if paused else None
    if action == ControlAction.RESUME:
        return None if paused else "the run is not paused"
    step = request.step
    if step is None or step not in fanout_steps:
        names = ", ".join(sorted(fanout_steps)) or "none"
        return f"'{step}' is not a fan-out step of this run (fan-out steps: {names})"
    if fanout_steps[step] in TERMINAL:
        return f"step '{step}' is already {fanout_steps[step]}"
    if action == ControlAction.CONCURRENCY:
        value = request.concurrency
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return "concurrency must be a whole number of at least 1"
        limit = min(run_limit, MAX_CONCURRENCY)
        if value > limit:
            return f"concurrency {value} is over this run's limit of {limit}"
        return None
    items = request.items
    if request.malformed or not items:
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
    request: ControlRequest,
    *,
    run: RunState,
    campaigns: Mapping[str, Campaign],
    concurrency_set: dict[str, int],
    audit: Callable[[str, str | None, dict[str, Any]], None],
    at: str | None,
) -> ControlJson:
    """Carry out an accepted control request; returns its record (kept in the state)."""
    action, by = request.action, request.by
    record: ControlJson = {
        "action": str(action),
        "by": by,
        "verified": request.verified,
        "at": at,
        "comment": request.comment,
    }
    if request.via:
        record["via"] = dict(request.via)
    campaign = campaigns.get(request.step or "")
    if action in (ControlAction.PAUSE, ControlAction.RESUME):
        run.paused = action == ControlAction.PAUSE
        for running in campaigns.values():
            await running.tell_batch({"paused": run.paused})
    elif action == ControlAction.CANCEL:
        pass  # recorded below; Temporal's cancel request follows from the client
    elif action == ControlAction.CONCURRENCY:
        assert request.step is not None  # the validator refuses one without
        record["step"], record["concurrency"] = request.step, request.concurrency
        concurrency_set[request.step] = request.concurrency
        if campaign is not None:
            await campaign.set_concurrency(request.concurrency)
    else:
        assert campaign is not None  # the validator refuses a skip before the start
        assert request.step is not None
        record["step"], record["items"] = request.step, request.items
        await campaign.skip(request.items)
    run.controls.append(record)
    run.touch(urgent=True)
    audit(AUDITED_CONTROL[action], by, {k: v for k, v in record.items() if k != "by"})
    return record
