"""The run store's outbox: events numbered in the workflow, written in batches.

One outbox serves both the run (RunbookWorkflow) and each fan-out batch
(BatchWorkflow). Events are numbered here, so every write is idempotent on
(run, batch, seq) however often Temporal retries it. Writing per event cost a
third of the throughput; writing in batches at moments that matter does not.

- The run flushes through a local activity, from a loop that wakes when 200
  events wait, when something must be visible at once (a gate opened, an evidence
  step is next), a minute after an event at the latest, and at the end.
- A batch flushes through a regular activity in the background, one write at a
  time: a local activity holds the workflow task open, and with hundreds of items
  completing meanwhile the server failed such tasks (FORCE_CLOSE_COMMAND).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from runner.contract import STORE_ACTIVITY, payload_size
from runner.contract.events import AuditEvent, StepEvent, StoreEvent, StoreWrite
from runner.contract.messages import JsonObject
from runner.times import iso

STORE_BATCH_BYTES = 1_000_000  # one write to the run store stays far below 2 MiB
STORE_FLUSH_EVENTS = 200  # write when this many events wait...
STORE_FLUSH_INTERVAL = timedelta(seconds=60)  # ...or at the latest this long after one
# A write to the store retries with backoff for as long as PostgreSQL is down.
STORE_WRITE_TIMEOUT = timedelta(seconds=30)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)


class Outbox:
    """Numbered events waiting for the run store; disabled, it keeps nothing."""

    def __init__(self, enabled: bool, now: Callable[[], datetime]) -> None:
        self.enabled = enabled
        self._now = now
        self.events: list[StoreEvent] = []
        self.seq = 0

    def _numbered(self, at: str | None) -> tuple[int, str]:
        self.seq += 1
        return self.seq, at or iso(self._now()) or ""

    def audit(self, action: str, actor: str | None, detail: JsonObject) -> None:
        if not self.enabled:
            return
        seq, when = self._numbered(None)
        self.events.append(
            AuditEvent(table="audit", seq=seq, at=when, action=action, actor=actor, detail=detail)
        )

    def step(
        self,
        step: str,
        status: str,
        *,
        item: str | None = None,
        attempt: int | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        output: Any = None,
        error: Any = None,
        at: str | None = None,
        worker: str | None = None,
    ) -> None:
        """Number a step's event; `at` is when it happened, if not now (an earlier attempt)."""
        if not self.enabled:
            return
        seq, when = self._numbered(at)
        event = StepEvent(
            table="step",
            seq=seq,
            at=when,
            step=step,
            item=item,
            attempt=attempt,
            status=status,
            started_at=started_at,
            finished_at=finished_at,
            output=output,
            error=error,
        )
        if worker is not None:
            event["worker"] = worker
        self.events.append(event)

    def next_batch(self) -> list[StoreEvent]:
        """The first events that fit in one write (at least one)."""
        batch: list[StoreEvent] = []
        size = 0
        for event in self.events:
            size += payload_size(event)
            if batch and size > STORE_BATCH_BYTES:
                break
            batch.append(event)
        return batch

    def written(self, count: int) -> None:
        del self.events[:count]


class RunWriter:
    """The run's flush loop (a local activity per write) and its triggers."""

    def __init__(self, outbox: Outbox, run_id: str) -> None:
        self.outbox = outbox
        self.run_id = run_id  # the store's run id (Temporal's run id)
        self.run_row: JsonObject | None = None  # the `runs` row, written with the next batch
        self.closing = False
        self.flush_now = False

    async def loop(self) -> None:
        """Write in batches until the run closes and the outbox is empty.

        The local activity retries with backoff for as long as PostgreSQL is down;
        the steps go on meanwhile, and the run waits for the store only at its end.
        """
        events = self.outbox.events
        while True:
            with contextlib.suppress(builtins.TimeoutError):
                await workflow.wait_condition(
                    lambda: self.closing or self.flush_now or len(events) >= STORE_FLUSH_EVENTS,
                    timeout=STORE_FLUSH_INTERVAL if events else None,
                    timeout_summary="qlrf plumbing: next write to the run store",
                )
            self.flush_now = False
            if not events and self.run_row is None:
                if self.closing:
                    return
                await workflow.wait_condition(lambda: bool(events) or self.closing)
                continue
            batch = self.outbox.next_batch()
            row = self.run_row
            write: StoreWrite = {"run_id": self.run_id, "run": row, "events": batch}
            await workflow.execute_local_activity(
                STORE_ACTIVITY,
                write,
                start_to_close_timeout=STORE_WRITE_TIMEOUT,
                retry_policy=STORE_RETRY,
                summary="qlrf plumbing: write the run's events to the run store",
            )
            self.outbox.written(len(batch))
            if self.run_row is row:
                self.run_row = None

    async def drained(self) -> None:
        """Wait until every event so far is in the store (before an evidence step)."""
        self.flush_now = True
        await workflow.wait_condition(lambda: not self.outbox.events and self.run_row is None)


class BatchWriter:
    """A fan-out batch's writes: in the background when full, and all at its end."""

    def __init__(self, outbox: Outbox, run_id: str) -> None:
        self.outbox = outbox
        self.run_id = run_id
        self._flushing: asyncio.Task[None] | None = None
        self._writes = 0

    def soon(self) -> None:
        """Write a full outbox in the background, one write at a time; items go on."""
        if len(self.outbox.events) < STORE_FLUSH_EVENTS:
            return
        if self._flushing is not None and not self._flushing.done():
            return
        self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        batch = self.outbox.next_batch()
        self._writes += 1
        write: StoreWrite = {
            "run_id": self.run_id,
            "run": None,
            "events": batch,
            # Rows of this batch are numbered by it: (run, batch, seq) is unique.
            "batch": workflow.info().workflow_id,
        }
        await workflow.execute_activity(
            STORE_ACTIVITY,
            write,
            activity_id=f"store:{self._writes}",
            summary="qlrf plumbing: write the items' events to the run store",
            start_to_close_timeout=STORE_WRITE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        self.outbox.written(len(batch))

    async def all(self) -> None:
        if self._flushing is not None:
            await self._flushing
        while self.outbox.events:
            await self._flush()
