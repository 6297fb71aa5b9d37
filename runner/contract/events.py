"""What a run writes to the run store, and what `history` reads back.

The run's outbox (runner/engine/outbox.py) numbers each event in the workflow and
sends them in batches to the `store_record` activity, which writes them
(runner/store/records.py); the evidence builder reads them back
(runner/store/evidence.py). They travel as JSON through a local activity, so they are
TypedDicts: plain dicts on the wire, checked by mypy where code reads them.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from runner.contract.messages import JsonObject


class StepEvent(TypedDict):
    """A step (or one fan-out item) started or ended: a `step_events` row."""

    table: Literal["step"]
    seq: int  # numbered by the run: a write is idempotent on (run, batch, seq)
    at: str
    step: str
    item: str | None
    attempt: int | None
    status: str
    started_at: str | None
    finished_at: str | None
    output: Any
    error: Any
    worker: NotRequired[str | None]  # pid@host of the worker that ran the attempt


class AuditEvent(TypedDict):
    """Something people did or the run decided: an `audit` row (vocab.AuditAction)."""

    table: Literal["audit"]
    seq: int
    at: str
    action: str
    actor: str | None
    detail: JsonObject


StoreEvent = StepEvent | AuditEvent


class StoreWrite(TypedDict):
    """One write to the run store: the run's row when it changed, and a batch of events."""

    run_id: str  # the store's id of the run (Temporal's run id)
    run: JsonObject | None
    events: list[StoreEvent]
    batch: NotRequired[str]  # a fan-out batch's workflow id: it numbers its own rows


class HistoryEvent(TypedDict):
    """One line of `history --format json`, from the store or from Temporal."""

    at: str
    event: str
    step: str | None
    item: str | None
    attempt: int | None
    actor: str | None
    detail: Any
