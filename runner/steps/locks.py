"""The two activities behind `locks:`: ask a lock for its key, and watch a lock's holder.

Workflow code can signal a running workflow but cannot signal-with-start one, and
cannot wait for another workflow's result; these activities do both with the
worker's own Temporal client.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowContinuedAsNewError, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from runner.contract import (
    ACQUIRE_FIELDS,
    LOCK_ACQUIRE,
    LOCK_REQUEST_ACTIVITY,
    LOCK_WATCH_ACTIVITY,
    LOCK_WORKFLOW_TYPE,
    LockInput,
    lock_workflow_id,
)
from runner.trust import internal

HEARTBEAT_SECONDS = 5.0


@activity.defn(name=LOCK_REQUEST_ACTIVITY)
async def lock_request(request: dict[str, Any]) -> dict[str, Any]:
    """Queue the run (or step) at the lock of `key`, starting the lock if nobody holds it."""
    key = str(request["key"])
    info = activity.info()
    wanted = {k: request.get(k) for k in ("token", "run", "temporal_run_id", "step")}
    # Authenticated with the workers' key: nobody who reads history can queue a holder.
    wanted["mac"] = internal.mac("acquire", key, *(wanted[k] for k in ACQUIRE_FIELDS))
    try:
        handle = await activity.client().start_workflow(
            LOCK_WORKFLOW_TYPE,
            LockInput(key),
            id=lock_workflow_id(key),
            task_queue=info.task_queue,
            start_signal=LOCK_ACQUIRE,
            start_signal_args=[wanted],
            static_summary=f"lock {key}",
        )
    except RPCError as exc:
        raise ApplicationError(
            f"lock {key}: the server refused the request: {exc.message}", type="LockUnavailable"
        ) from None
    return {"lock": handle.id}


@activity.defn(name=LOCK_WATCH_ACTIVITY)
async def lock_watch(request: dict[str, Any]) -> dict[str, Any]:
    """Return {"closed": True} once the holder's run has closed, however it closed;
    {"closed": False} when it still runs after `seconds` (the lock watches again)."""
    seconds = float(request.get("seconds") or 3600)
    handle = activity.client().get_workflow_handle(
        str(request["run"]), run_id=str(request.get("temporal_run_id") or "") or None
    )
    beat = asyncio.create_task(_heartbeat())
    try:
        await asyncio.wait_for(_closed(handle), timeout=seconds)
    except TimeoutError:
        return {"closed": False}
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    return {"closed": True}


async def _closed(handle: Any) -> None:
    try:
        await handle.result(follow_runs=False, rpc_timeout=timedelta(minutes=5))
    except (WorkflowFailureError, WorkflowContinuedAsNewError):
        return  # failed, cancelled, timed out or terminated: closed all the same
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return  # gone from the server: closed long ago
        raise


async def _heartbeat() -> None:
    # Heartbeats carry the lock's cancel when its holder gives the key back, and tell
    # the server that the watch is alive (a dead worker's watch is started again).
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_SECONDS)
