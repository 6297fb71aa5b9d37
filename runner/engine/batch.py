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
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from runner.contract import (
        BATCH_CONTROL_SIGNAL,
        BATCH_WORKFLOW_TYPE,
        INVENTORY_PAGE_ACTIVITY,
        PAYLOAD_LIMIT,
        PROGRESS_QUERY,
        BatchInput,
        BatchItem,
        BatchResult,
        PagedSource,
        StepRequest,
    )
    from runner.contract.state import ErrorJson, FailureJson
    from runner.engine import inventory, metrics, render
    from runner.engine.activity_call import call_activity
    from runner.engine.failures import StepFailed
    from runner.engine.outbox import BatchWriter, Outbox
    from runner.plan.model import RetryPolicy, Timeouts
    from runner.plan.waves import item_key
    from runner.times import iso
    from runner.trust import internal

# An item's error as kept in the summary: enough to act on, small enough for 1,000.
ITEM_ERROR_LIMIT = 500


@workflow.defn(name=BATCH_WORKFLOW_TYPE)
class BatchWorkflow:
    def __init__(self) -> None:
        self._concurrency = 1
        self._paused = False
        self._skip: set[int] = set()
        self._skip_names: set[str] = set()  # a fan-out from a file skips by name
        self._running = 0
        self._succeeded = 0
        self._failed = 0
        self._skipped: list[int] = []
        self._exceeded = False
        self._changed = False
        self._failures: list[FailureJson] = []
        self._outputs: dict[str, Any] = {}
        self._total = 0
        self._signalled: set[str] = set()  # settings changed by `control` before the run began
        self._outbox = Outbox(False, workflow.now)
        self._writer: BatchWriter | None = None
        # Unknown until the input is read: a signal may come first, and is held until then.
        self._authenticated: bool | None = None
        self._held: list[dict[str, Any]] = []
        self._seq = 0

    @workflow.signal(name=BATCH_CONTROL_SIGNAL)
    def control(self, change: Any) -> None:
        """Live control forwarded by the run; the run's Update validated it already. A
        batch of an authenticating run takes only its run's signals, each once, in order:
        a pause, a resume or a skip read from history cannot be sent again."""
        if not isinstance(change, dict):
            return
        if self._authenticated is not False:
            if not self._from_run(change):
                return
            change = {k: v for k, v in change.items() if k not in ("seq", "mac")}
        if "paused" in change:
            self._paused = bool(change["paused"])
        if "concurrency" in change:
            self._concurrency = max(1, int(change["concurrency"]))
        if "skip" in change:
            self._skip.update(int(i) for i in change["skip"])
        if "skip_names" in change:
            self._skip_names.update(str(n) for n in change["skip_names"])
        self._signalled.update(change)
        self._changed = True

    def _from_run(self, change: dict[str, Any]) -> bool:
        if self._authenticated is None:
            if len(self._held) < 100:
                self._held.append(change)
            return False
        seq = change.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= self._seq:
            return False
        body = {k: v for k, v in change.items() if k not in ("seq", "mac")}
        if not internal.valid(change.get("mac"), "batch", workflow.info().workflow_id, seq, body):
            return False
        self._seq = seq
        return True

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> dict[str, int]:
        return {
            "total": self._total,
            "succeeded": self._succeeded,
            "failed": self._failed,
            "skipped": len(self._skipped),
            "running": self._running,
        }

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchResult:
        if workflow.info().parent is None:
            # Started straight through the Temporal API: it would run steps that no
            # run asked for, past the run's checks (its start signature among them).
            raise ApplicationError(
                "a batch runs only as a child of its run; start runs with qlrf-run apply",
                type="Unauthenticated",
                non_retryable=True,
            )
        self._authenticated = bool(batch.authenticated)
        for held in self._held:  # signals handled before the input was read
            self.control(held)
        self._held = []
        # A signal sent right after the start can be handled before this runs: it is newer.
        if "concurrency" not in self._signalled:
            self._concurrency = max(1, batch.concurrency)
        if "paused" not in self._signalled:
            self._paused = batch.paused
        self._skip.update(batch.skip)
        self._skip_names.update(batch.skip_names)
        page: dict[str, Any] = {}
        items = batch.items
        if batch.source is not None:
            items, page = await self._page(batch.source)
        self._total = len(items)
        self._outbox.enabled = bool(batch.store_run_id)
        writer = self._writer = BatchWriter(self._outbox, batch.store_run_id)
        retry = RetryPolicy.from_dict(batch.retry)
        timeouts = Timeouts.from_dict(batch.timeouts)
        waiting = deque(items)
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
                    if item.index in self._skip or item.key in self._skip_names:
                        self._skipped.append(item.index)
                        self._event(batch, item, "skipped")
                        continue
                    self._running += 1
                    tasks.append(asyncio.create_task(self._one(batch, item, retry, timeouts)))
                if self._running == 0 and (not waiting or self._exceeded):
                    break
                writer.soon()
                self._changed = False
                await workflow.wait_condition(lambda: self._changed)
        except asyncio.CancelledError:
            # The run was cancelled or timed out: stop the items in flight, keep the record.
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await writer.all()
            raise
        # Items never started because the wave stopped are left out, and counted so.
        not_started = [item.index for item in waiting]
        await writer.all()
        await workflow.wait_condition(workflow.all_handlers_finished)
        result: BatchResult = {
            "succeeded": self._succeeded,
            "failed": self._failed,
            "skipped": self._skipped,
            "not_started": not_started,
            "exceeded": self._exceeded,
            "failures": self._failures,
            "outputs": self._outputs if batch.keep_outputs else {},
        }
        if page and batch.keep_outputs:
            result["page"] = page  # a small fan-out from a file: the run lists its items
        return result

    async def _page(self, source: PagedSource) -> tuple[list[BatchItem], dict[str, Any]]:
        """Read this batch's page of the inventory on the worker, and render its items.

        A failure here fails the batch, and so the step, with its own error type."""
        try:
            read = await call_activity(
                INVENTORY_PAGE_ACTIVITY,
                {**source.inventory, "start": source.start, "end": source.end},
                activity_id=f"inventory:{source.start}",
                summary=f"read items {source.start + 1}-{source.end} of the inventory",
                retry=inventory.RETRY,
                timeouts=inventory.TIMEOUTS,
            )
        except StepFailed as failure:
            raise ApplicationError(
                failure.message, type=failure.error_type, non_retryable=True
            ) from None
        values = read["items"]
        context = {**source.context, "secrets": render.Secrets()}
        items: list[BatchItem] = []
        page: dict[str, Any] = {}
        for offset, value in enumerate(values):
            index = source.start + offset
            key = item_key(value, named=source.named)
            try:
                item, size = render.fanout_item(
                    index,
                    key,
                    source.with_,
                    {**context, source.loop_var: value},
                    source.script,
                    source.secrets,
                )
            except render.TemplateFailure as exc:
                raise ApplicationError(
                    f"item {key!r}: {exc}", type="TemplateError", non_retryable=True
                ) from None
            if size > PAYLOAD_LIMIT:
                raise ApplicationError(
                    render.item_too_large(key, size), type="PayloadsTooLarge", non_retryable=True
                )
            items.append(item)
            page[str(index)] = value
        return items, page

    async def _one(
        self, batch: BatchInput, item: BatchItem, retry: RetryPolicy, timeouts: Timeouts
    ) -> None:
        started = workflow.now()
        status, output, error, attempt = "failed", None, None, None
        worker: str | None = None
        try:
            result = await call_activity(
                batch.activity,
                StepRequest(
                    batch.run_id,
                    batch.step,
                    item.params,
                    item.script_env,
                    secret_params=item.secret_params,
                    secret_env=item.secret_env,
                    item=item.key,
                    trust=batch.trust,
                ),
                activity_id=f"step:{batch.step}:{item.index}",
                summary=f"{batch.name} [{item.key}]"[:200],
                retry=retry,
                timeouts=timeouts,
            )
            status, output = "succeeded", result.get("output")
            attempt = int(result.get("attempt", 1))
            worker = result.get("worker")
            self._succeeded += 1
            if batch.keep_outputs:
                self._outputs[str(item.index)] = output
        except StepFailed as failure:
            attempt, worker = failure.attempts, failure.worker
            error = failure.as_error()
            self._failed += 1
            self._failures.append(
                {
                    "index": item.index,
                    "item": item.key,
                    "at": iso(workflow.now()),
                    "error": {
                        "type": error["type"],
                        "message": error["message"][:ITEM_ERROR_LIMIT],
                        **({"worker": error["worker"]} if error.get("worker") else {}),
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
                self._event(batch, item, status, output, error, attempt, started, worker)
                metrics.item_ended(status)

    def _event(
        self,
        batch: BatchInput,
        item: BatchItem,
        status: str,
        output: Any = None,
        error: ErrorJson | None = None,
        attempt: int | None = None,
        started: datetime | None = None,
        worker: str | None = None,
    ) -> None:
        """One run store row per item, at its end (it holds when it started)."""
        self._outbox.step(
            batch.step,
            status,
            item=item.key,
            attempt=attempt,
            started_at=iso(started),
            finished_at=iso(workflow.now()),
            output=output,
            error=error,
            worker=worker,
        )
