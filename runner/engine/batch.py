"""BatchWorkflow: one batch of a fan-out's wave, as a child workflow of the run.

The run (runner/engine/campaign.py) cuts each wave into batches of at most 1,000
items, so that no history grows past Temporal's limits, and runs them one after
another. A batch runs its items as activities, at most `concurrency` at once,
stops starting items once the wave's failure budget is exceeded (those in flight
finish), and returns a summary rather than every item's output. It writes one run
store row per item, in batches, under the run's id.

The run forwards live control (pause, resume, concurrency, skip) by the `control`
signal; `progress` answers what the batch has done so far, for `status` and `apply`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from runner.engine.model import (
        BATCH_WORKFLOW_TYPE,
        STORE_ACTIVITY,
        BatchInput,
        BatchItem,
        StepRequest,
    )
    from runner.engine.steps_state import (
        ERROR_TEXT_LIMIT,
        STORE_FLUSH_EVENTS,
        STORE_RETRY,
        STORE_WRITE_TIMEOUT,
        iso,
        ms,
        next_store_batch,
        retry_policy,
        step_failure,
    )

# An item's error as kept in the summary: enough to act on, small enough for 1,000.
ITEM_ERROR_LIMIT = 500


@workflow.defn(name=BATCH_WORKFLOW_TYPE)
class BatchWorkflow:
    def __init__(self) -> None:
        self._concurrency = 1
        self._paused = False
        self._skip: set[int] = set()
        self._running = 0
        self._succeeded = 0
        self._failed = 0
        self._skipped: list[int] = []
        self._exceeded = False
        self._changed = False
        self._failures: list[dict[str, Any]] = []
        self._outputs: dict[str, Any] = {}
        self._outbox: list[dict[str, Any]] = []
        self._seq = 0
        self._total = 0
        self._signalled: set[str] = set()  # settings changed by `control` before the run began
        self._flushing: asyncio.Task[None] | None = None
        self._writes = 0

    @workflow.signal
    def control(self, change: dict[str, Any]) -> None:
        """Live control forwarded by the run; the run's Update validated it already."""
        if "paused" in change:
            self._paused = bool(change["paused"])
        if "concurrency" in change:
            self._concurrency = max(1, int(change["concurrency"]))
        if "skip" in change:
            self._skip.update(int(i) for i in change["skip"])
        self._signalled.update(change)
        self._changed = True

    @workflow.query
    def progress(self) -> dict[str, int]:
        return {
            "total": self._total,
            "succeeded": self._succeeded,
            "failed": self._failed,
            "skipped": len(self._skipped),
            "running": self._running,
        }

    @workflow.run
    async def run(self, batch: BatchInput) -> dict[str, Any]:
        # A signal sent right after the start can be handled before this runs: it is newer.
        if "concurrency" not in self._signalled:
            self._concurrency = max(1, batch.concurrency)
        if "paused" not in self._signalled:
            self._paused = batch.paused
        self._skip.update(batch.skip)
        self._total = len(batch.items)
        waiting = deque(batch.items)
        tasks: list[asyncio.Task[None]] = []
        try:
            while True:
                while (
                    waiting
                    and not self._paused
                    and not self._exceeded
                    and self._running < self._concurrency
                ):
                    item = waiting.popleft()
                    if item.index in self._skip:
                        self._skipped.append(item.index)
                        self._event(batch, item, "skipped", None, None, None)
                        continue
                    self._running += 1
                    tasks.append(asyncio.create_task(self._one(batch, item)))
                if self._running == 0 and (not waiting or self._exceeded):
                    break
                self._flush_soon(batch)
                self._changed = False
                await workflow.wait_condition(lambda: self._changed)
        except asyncio.CancelledError:
            # The run was cancelled or timed out: stop the items in flight, keep the record.
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush_all(batch)
            raise
        # Items never started because the wave stopped are left out, and counted so.
        not_started = [item.index for item in waiting]
        await self._flush_all(batch)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return {
            "succeeded": self._succeeded,
            "failed": self._failed,
            "skipped": self._skipped,
            "not_started": not_started,
            "exceeded": self._exceeded,
            "failures": self._failures,
            "outputs": self._outputs if batch.keep_outputs else {},
        }

    async def _one(self, batch: BatchInput, item: BatchItem) -> None:
        started = workflow.now()
        status, output, error, attempt = "failed", None, None, None
        try:
            result = await workflow.execute_activity(
                batch.activity,
                StepRequest(batch.run_id, batch.step, item.params, item.script_env),
                activity_id=f"step:{batch.step}:{item.index}",
                summary=f"{batch.name} [{item.key}]"[:200],
                start_to_close_timeout=ms(batch.timeouts.get("start_to_close_ms")),
                schedule_to_close_timeout=ms(batch.timeouts.get("schedule_to_close_ms")),
                schedule_to_start_timeout=ms(batch.timeouts.get("schedule_to_start_ms")),
                heartbeat_timeout=ms(batch.timeouts.get("heartbeat_ms")),
                retry_policy=retry_policy(batch.retry),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            status, output = "succeeded", result.get("output")
            attempt = int(result.get("attempt", 1))
            self._succeeded += 1
            if batch.keep_outputs:
                self._outputs[str(item.index)] = output
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                status = "cancelled"
                raise asyncio.CancelledError() from None
            failure = step_failure(exc, batch.retry["max_attempts"])
            attempt = failure.attempts
            error = {"type": failure.error_type, "message": failure.message[:ERROR_TEXT_LIMIT]}
            self._failed += 1
            self._failures.append(
                {
                    "index": item.index,
                    "item": item.key,
                    "error": {
                        "type": error["type"],
                        "message": error["message"][:ITEM_ERROR_LIMIT],
                    },
                }
            )
            if batch.budget is not None and self._failed > batch.budget:
                self._exceeded = True
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except GeneratorExit:
            # The worker evicted the batch from its cache (it stops, or the cache is
            # full): it goes on elsewhere from history, and no workflow call is allowed.
            status = "evicted"
            raise
        finally:
            if status != "evicted":
                self._running -= 1
                self._changed = True
                self._event(batch, item, status, output, error, attempt, started)

    def _event(
        self,
        batch: BatchInput,
        item: BatchItem,
        status: str,
        output: Any,
        error: dict[str, str] | None,
        attempt: int | None,
        started: Any = None,
    ) -> None:
        """One run store row per item, at its end (it holds when it started)."""
        if not batch.store_run_id:
            return
        self._seq += 1
        now = iso(workflow.now())
        self._outbox.append(
            {
                "table": "step",
                "seq": self._seq,
                "at": now,
                "step": batch.step,
                "item": item.key,
                "attempt": attempt,
                "status": status,
                "started_at": iso(started),
                "finished_at": now,
                "output": output,
                "error": error,
            }
        )

    def _flush_soon(self, batch: BatchInput) -> None:
        """Write a full outbox in the background, one write at a time; items go on."""
        if len(self._outbox) < STORE_FLUSH_EVENTS:
            return
        if self._flushing is not None and not self._flushing.done():
            return
        self._flushing = asyncio.create_task(self._flush(batch))

    async def _flush(self, batch: BatchInput) -> None:
        events = next_store_batch(self._outbox)
        self._writes += 1
        # A regular activity, not a local one as the run uses: a local activity holds
        # the workflow task open, and with hundreds of items completing meanwhile the
        # server failed such tasks (FORCE_CLOSE_COMMAND), costing replays.
        await workflow.execute_activity(
            STORE_ACTIVITY,
            {
                "run_id": batch.store_run_id,
                "run": None,
                "events": events,
                # Rows of this batch are numbered by it: (run, batch, seq) is unique.
                "batch": workflow.info().workflow_id,
            },
            activity_id=f"store:{self._writes}",
            summary="write items to the run store",
            start_to_close_timeout=STORE_WRITE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        del self._outbox[: len(events)]

    async def _flush_all(self, batch: BatchInput) -> None:
        if self._flushing is not None:
            await self._flushing
        while self._outbox:
            await self._flush(batch)
