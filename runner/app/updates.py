"""Sending an Update the run has been reached for (reach.py), and reading its answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from runner.app.reach import Reached, Unreached

UPDATE_SECONDS = 30


async def send(reached: Reached, name: str, request: Any) -> Any:
    """The Update's result; Unreached with the run's reason when it refuses."""
    run = reached.handle.id
    try:
        return await reached.handle.execute_update(
            name, request, rpc_timeout=timedelta(seconds=UPDATE_SECONDS)
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Unreached(getattr(cause, "message", None) or str(cause or exc)) from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise Unreached(
            f"no worker answered for run {run} within {UPDATE_SECONDS}s; "
            "start one with `qlrf-run worker` and try again"
        ) from None
    except RPCError as exc:
        raise Unreached(f"run {run} does not take {name} requests now ({exc.message})") from None
