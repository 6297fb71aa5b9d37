"""Reaching a run before asking it to do something: at most three calls to the server.

An Update (a decision, a control request) needs a worker to validate it, and in
signed mode a signature over what the run itself checks. So before one:
1. describe the run: it exists and runs, and on which task queue;
2. describe the task queue: with no worker polling, say so at once;
3. ask the run its `basis` (runner/contract/messages.py), which also proves a worker
   answers now: a worker that stopped a moment ago is still listed as polling.
The basis comes from the run itself, never from a published picture that may lag
behind it: a signature built on it is the one the run checks. When the run cannot
answer, nothing is signed or sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from runner.app.context import Context
from runner.client.workers import Pollers, all_stopping, no_worker, pollers
from runner.contract import BASIS_QUERY, STATE_QUERY
from runner.contract.messages import Basis
from runner.contract.state import RunView
from runner.errors import QlrfError

# A worker answers a query in milliseconds, a busy one in well under a second: one that
# has not answered within this long is asked whether it has stopped, so that a person
# is told within 2 s when the last worker stopped a moment ago.
BASIS_SECONDS = 1.2
# A worker that has not said it stopped is given this long (a busy one, or one taking
# the run over from a worker that died: the server waits STICKY_TIMEOUT for it).
LONGER_SECONDS = 10.0


class Unreached(QlrfError):
    """The run cannot take the request now; the message says why and what to do."""


class NoRun(QlrfError):
    """No run has that id (nor that Temporal run id)."""


@dataclass
class Reached:
    handle: WorkflowHandle[Any, Any]
    description: WorkflowExecutionDescription
    basis: Basis


async def described(
    ctx: Context, run: str
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
    """The run by its id, or by the Temporal run id that `history` and evidence show."""
    handle = ctx.client.get_workflow_handle(run)
    try:
        return handle, await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise QlrfError(f"cannot look at run {run}: {exc.message}") from None
    by_run_id = await _by_temporal_run_id(ctx, run)
    if by_run_id is None:
        raise NoRun(f"no run '{run}'; `qlrf-run list` shows the runs")
    handle = ctx.client.get_workflow_handle(by_run_id, run_id=run)
    return handle, await handle.describe()


async def _by_temporal_run_id(ctx: Context, run: str) -> str | None:
    """The workflow id of the run whose Temporal run id is `run` (a UUID), if any."""
    try:
        uuid.UUID(run)
    except ValueError:
        return None
    async for found in ctx.client.list_workflows(f"RunId = '{run}'", limit=1):
        return found.id
    return None


async def reach(ctx: Context, run: str, what: str) -> Reached:
    """The run, its description and its basis; Unreached when it cannot take `what`.

    The run is described and asked its basis at once: when a worker answers at once
    (the usual case) that is all, and the task queue's pollers are asked only when it
    does not, to say at once (within 2 s) that no worker serves the run."""
    handle = ctx.client.get_workflow_handle(run)
    asked = asyncio.ensure_future(_ask(handle, BASIS_SECONDS))
    try:
        handle, description = await described(ctx, run)
        if description.status != WorkflowExecutionStatus.RUNNING:
            shown = description.status.name.lower() if description.status else "closed"
            raise Unreached(f"run {run} has ended ({shown}); it takes no {what} requests")
        if handle.id != run:  # named by its Temporal run id: ask the run by its own id
            asked.cancel()
            asked = asyncio.ensure_future(_ask(handle, BASIS_SECONDS))
        queue = description.task_queue
        try:
            raw = await asked
        except WorkflowQueryFailedError as exc:
            raw = await _failed_query(handle, exc)
        if raw is None:
            seen = await pollers(ctx.client, queue)
            if not seen.any:
                raise Unreached(no_worker(queue))
            raw = await _longer(ctx, handle, queue, seen)
        return Reached(handle, description, _parsed(handle, raw))
    finally:
        if not asked.done():
            asked.cancel()
        with contextlib.suppress(BaseException):
            await asked  # its outcome is read above, or no longer wanted


async def _longer(ctx: Context, handle: WorkflowHandle[Any, Any], queue: str, seen: Pollers) -> Any:
    """The basis, asked again. A worker that does not answer at once may have stopped a
    moment ago (its poll is still listed): when every listed poller told the server it
    is shutting down, no worker serves the run. Otherwise one may be busy, or take the
    run over from one that died (the server waits STICKY_TIMEOUT for a dead worker's
    cache, runner/worker.py): the run is given longer."""
    raw = None
    if not await all_stopping(ctx.client, queue, set(seen.ages)):
        try:
            raw = await _ask(handle, LONGER_SECONDS)
        except WorkflowQueryFailedError as exc:
            raw = await _failed_query(handle, exc)
    if raw is None:
        raise Unreached(
            f"no worker answered run {handle.id} (the last one polled task queue {queue} "
            f"{seen.youngest:.0f}s ago); start one with `qlrf-run worker` "
            "(the run waits meanwhile, and nothing was signed or sent)"
        )
    return raw


async def _failed_query(handle: WorkflowHandle[Any, Any], exc: WorkflowQueryFailedError) -> Any:
    """The basis when the run refused the query: not yet (starting), or a run started by
    a version without the `basis` query, whose state has the same."""
    if "starting" in str(exc):
        raise Unreached(f"run {handle.id} is starting; try again in a moment") from None
    return await _from_state(handle)


def _parsed(handle: WorkflowHandle[Any, Any], raw: Any) -> Basis:
    found = Basis.parse(raw)
    if found is None or not found.run_id:
        raise Unreached(f"run {handle.id} gave no basis to sign; nothing was sent")
    return found


async def _ask(handle: WorkflowHandle[Any, Any], seconds: float) -> Any:
    """The basis query's answer; None when nobody answered within `seconds`."""
    try:
        return await handle.query(BASIS_QUERY, rpc_timeout=timedelta(seconds=seconds))
    except WorkflowQueryFailedError:
        raise
    except RPCError:
        return None


async def _from_state(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    try:
        view = RunView.from_json(
            await handle.query(STATE_QUERY, rpc_timeout=timedelta(seconds=BASIS_SECONDS * 4))
        )
        declarations = await handle.query(
            "declarations", rpc_timeout=timedelta(seconds=BASIS_SECONDS * 4)
        )
    except RPCError as exc:
        raise Unreached(f"run {handle.id} did not answer ({exc}); nothing was sent") from None
    return {
        "run_id": view.run_id,
        "temporal_run_id": view.temporal_run_id,
        "plan_hash": view.plan_hash,
        "inputs_hash": view.inputs_hash,
        "mode": view.identity.mode if view.identity is not None else "claimed",
        "rounds": {g.gate: g.round for g in view.gates},
        "declarations": declarations,
    }
