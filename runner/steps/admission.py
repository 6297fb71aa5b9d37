"""What a run's start must prove beyond its signature, checked on the worker as the
run begins (docs/trust.md), where the run store and Temporal can be asked:

- **A signed start is used once, ever.** Its nonce is spent in the run store for the
  one execution it started; another execution of the same workflow id with the same
  proof (after a terminate) is refused, whatever its input says.
- **A schedule's signature starts only the schedule's own runs**: the schedule must
  exist, and list this very execution among the runs it started.
- **A redrive keeps only what the original really did.** The run it continues must
  exist and have ended failed, cancelled or timed out, with the same plan; what the
  redrive keeps (steps' outputs, fan-out items done) is read here from the run
  store, else from Temporal, never taken from the run's input; and a run is
  redriven by one run only (the first to claim it in the store).

The answer, recorded in the run's history, is {"refused": why or None, "redrive":
what it keeps or None}.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from runner.contract import START_ADMISSION_ACTIVITY, payload_size
from runner.errors import QlrfError
from runner.plan.redrive import keep
from runner.steps import redrive_source
from runner.trust.claims import UNPROVEN

# The schedule lists a run it started once it has recorded the start: a moment after.
SCHEDULE_LOOKS = 10
SCHEDULE_PAUSE = 0.3
KEPT_LIMIT = 1_000_000


def _refused(why: str) -> dict[str, Any]:
    return {"refused": why, "redrive": None}


@activity.defn(name=START_ADMISSION_ACTIVITY)
async def start_admission(request: dict[str, Any]) -> dict[str, Any]:
    workflow_id = str(request["workflow_id"])
    run_id = str(request["temporal_run_id"])
    nonce = request.get("nonce")
    if isinstance(nonce, str) and nonce:
        holder = await _claim("spent_proofs", nonce, workflow_id, run_id)
        if holder != (workflow_id, run_id):
            return _refused(
                f"{UNPROVEN}: this signature started run {holder[0]} "
                f"(Temporal run {holder[1]}) already, and a signed start is used once"
            )
    schedule = request.get("schedule")
    if isinstance(schedule, str) and schedule:
        problem = await _scheduled_here(schedule, workflow_id, run_id)
        if problem is not None:
            return _refused(f"{UNPROVEN}: {problem}")
    redrive = request.get("redrive")
    if redrive is None:
        return {"refused": None, "redrive": None}
    return await _redrive(request, redrive, workflow_id, run_id)


async def _claim(table: str, key: str, workflow_id: str, run_id: str) -> tuple[str, str]:
    from runner.store.activity import pool
    from runner.store.records import claim_once

    try:
        return await claim_once(await pool(), table, key, workflow_id, run_id)
    except Exception as exc:  # the store is down: the activity is retried
        raise ApplicationError(
            f"the run store cannot record the start yet: {type(exc).__name__}: {exc}",
            type="StoreUnavailable",
        ) from None


async def _scheduled_here(schedule: str, workflow_id: str, run_id: str) -> str | None:
    """Why this execution was not started by `schedule` (as the schedule itself says);
    None when it was."""
    handle = activity.client().get_schedule_handle(schedule)
    for _ in range(SCHEDULE_LOOKS):
        try:
            described = await handle.describe(rpc_timeout=timedelta(seconds=10))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return f"schedule {schedule} does not exist (any more)"
            raise
        info = described.info
        started = [*info.running_actions, *(a.action for a in info.recent_actions)]
        for action in started:
            if (
                getattr(action, "workflow_id", None) == workflow_id
                and getattr(action, "first_execution_run_id", None) == run_id
            ):
                return None
        await asyncio.sleep(SCHEDULE_PAUSE)
    return f"schedule {schedule} did not start this run"


async def _redrive(
    request: dict[str, Any], redrive: Any, workflow_id: str, run_id: str
) -> dict[str, Any]:
    if not isinstance(redrive, dict) or not isinstance(redrive.get("of"), str):
        return _refused("the run's redrive does not name the run it continues")
    of = str(redrive["of"])
    start_from = redrive.get("from")
    if start_from is not None and not isinstance(start_from, str):
        return _refused("the run's redrive names its --from step as text")
    from runner.local.postgres import database_url, store_enabled

    recording = store_enabled()
    try:
        original = await redrive_source.from_temporal(activity.client(), of)
        if recording:
            dsn = await asyncio.to_thread(database_url)
            original, _ = await redrive_source.from_store(dsn, of, original)
    except QlrfError as exc:
        return _refused(f"the run's redrive is refused: {exc}")
    if original is None:
        return _refused(f"the run's redrive continues run {of}, which does not exist")
    if original.plan_hash != request.get("plan_hash"):
        return _refused(
            f"the run's redrive continues run {of}, which ran another plan "
            f"({original.plan_hash[:12] or 'unknown'}); a redrive runs the original's plan"
        )
    shape = request.get("shape")
    if not isinstance(shape, list):
        return _refused("the run's redrive comes without the plan's shape")
    try:
        kept = keep(original, shape, start_from, bool(redrive.get("reapprove")))
    except QlrfError as exc:
        return _refused(f"the run's redrive is refused: {exc}")
    if payload_size(kept) > KEPT_LIMIT:
        return _refused(
            "the outputs kept from the run redriven are too large for one run; redrive it "
            "--from an earlier step, so fewer outputs are carried over"
        )
    if recording:
        holder = await _claim("redrive_claims", of, workflow_id, run_id)
        if holder != (workflow_id, run_id):
            return _refused(
                f"run {of} is redriven by run {holder[0]} already; each run is redriven "
                f"once: redrive {holder[0]} to go on from where it ended"
            )
    return {"refused": None, "redrive": kept}
