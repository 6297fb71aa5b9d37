"""Writing and reading the run store. Every write is idempotent."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg

from runner.contract.events import HistoryEvent, StoreWrite
from runner.store import chain
from runner.store.db import Row, storable_text
from runner.store.evidence import REDRIVE_CHAIN, run_identity
from runner.times import iso

# The columns a run's row is written with: those its seal covers (store/chain.py).
_RUN_COLUMNS = chain.RUN_FIELDS


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


async def write(pool: asyncpg.Pool, batch: StoreWrite) -> int:
    """Write one batch from a run's outbox in one transaction; returns the rows added."""
    added = 0
    async with pool.acquire() as connection, connection.transaction():
        run = batch.get("run")
        if run is not None:
            values = [
                _time(run.get(c)) if c.endswith("_at") else storable_text(run.get(c))
                for c in _RUN_COLUMNS
            ]
            placeholders = ", ".join(f"${i + 1}" for i in range(len(_RUN_COLUMNS)))
            await connection.execute(
                f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({placeholders}) "
                "ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, "
                "finished_at = EXCLUDED.finished_at, outputs = EXCLUDED.outputs, "
                "error = EXCLUDED.error, inputs = EXCLUDED.inputs "
                # A late retry of an earlier batch must not reopen a finished run.
                "WHERE runs.finished_at IS NULL",
                *values,
            )
        run_id = batch["run_id"]
        source = batch.get("batch") or ""  # a fan-out batch numbers its own rows
        events = batch.get("events", [])
        head, length = "", 0
        if events:
            # The run's chain grows one writer at a time (a run and its batches write
            # at once): the head's row lock orders them.
            # One statement that makes the head if it is new and locks it either way.
            found = await connection.fetchrow(
                "INSERT INTO chain_heads (run_id, head, length) VALUES ($1, '', 0) "
                "ON CONFLICT (run_id) DO UPDATE SET run_id = EXCLUDED.run_id "
                "RETURNING head, length",
                run_id,
            )
            head, length = found["head"], found["length"]
        for event in events:
            if event["table"] == "step":
                row = {
                    "batch": source,
                    "seq": event["seq"],
                    "at": _time(event["at"]),
                    # Text columns cannot hold NUL: what a name of the run's own making
                    # (an item from a step's output) may carry; jsonb keeps it whole.
                    "step": storable_text(event["step"]),
                    "item": storable_text(event.get("item")),
                    "attempt": event.get("attempt"),
                    "status": storable_text(event["status"]),
                    "started_at": _time(event.get("started_at")),
                    "finished_at": _time(event.get("finished_at")),
                    "output": event.get("output"),
                    "error": event.get("error"),
                    "worker": storable_text(event.get("worker")),
                }
                linked = chain.link_hash(head, chain.link("step", row))
                result = await connection.execute(
                    "INSERT INTO step_events (run_id, batch, seq, at, step, item, attempt, "
                    "status, started_at, finished_at, output, error, worker, prev_hash, hash, "
                    "link) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
                    "$15, $16) ON CONFLICT (run_id, batch, seq) DO NOTHING",
                    run_id,
                    *row.values(),
                    head,
                    linked,
                    length + 1,
                )
            else:
                row = {
                    "seq": event["seq"],
                    "at": _time(event["at"]),
                    "actor": storable_text(event.get("actor")),
                    "action": storable_text(event["action"]),
                    "detail": event.get("detail"),
                }
                linked = chain.link_hash(head, chain.link("audit", row))
                result = await connection.execute(
                    "INSERT INTO audit_log (run_id, seq, at, actor, action, detail, prev_hash, "
                    "hash, link) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                    "ON CONFLICT (run_id, seq) DO NOTHING",
                    run_id,
                    *row.values(),
                    head,
                    linked,
                    length + 1,
                )
            inserted = int(result.rsplit(" ", 1)[-1])
            if inserted:  # a retried write adds nothing, and links nothing
                head, length = linked, length + 1
            added += inserted
        if events:
            await connection.execute(
                "UPDATE chain_heads SET head = $2, length = $3 WHERE run_id = $1",
                run_id,
                head,
                length,
            )
    if run is not None and run.get("finished_at") and os.environ.get(chain.SEAL_KEY):
        await seal(pool, run_id)
    return added


async def seal(pool: asyncpg.Pool, run_id: str) -> None:
    """Seal a finished run once: the worker's signature over its final row and the head
    of its chain. Without QLRF_SEAL_KEY, runs stay unsealed; a key that cannot sign
    leaves the reason in place of the seal (the run itself is never held up)."""
    found = await find_run(pool, run_id)
    if found is None or found["finished_at"] is None or found.get("seal") is not None:
        return
    record = chain.run_record(found)  # as evidence shows it: with its definition's text
    heads = await pool.fetchrow("SELECT head, length FROM chain_heads WHERE run_id = $1", run_id)
    head, length = (heads["head"], heads["length"]) if heads else ("", 0)
    try:
        value: Row | None = await chain.sealed(record, head, length)
    except (OSError, RuntimeError, TimeoutError) as exc:
        value = {"error": str(exc)[:500]}
    if value is None:
        return
    await pool.execute(
        "UPDATE runs SET seal = $2 WHERE run_id = $1 AND seal IS NULL", run_id, value
    )


async def find_run(pool: asyncpg.Pool, run: str) -> Row | None:
    """The run by Temporal run id, or the latest execution of a workflow id."""
    row = await pool.fetchrow(
        "SELECT r.*, d.text AS kept_text FROM runs r "
        "LEFT JOIN definitions d ON d.sha256 = r.definition_sha256 "
        "WHERE r.run_id = $1 OR r.workflow_id = $1 ORDER BY r.started_at DESC LIMIT 1",
        run,
    )
    if row is None:
        return None
    found = dict(row)
    # Runs started before the definitions table carried the text in their own row.
    kept = found.pop("kept_text")
    found["definition_text"] = found["definition_text"] or kept
    return found


async def outcomes(pool: asyncpg.Pool, run_id: str) -> tuple[dict[str, Row], dict[str, list[str]]]:
    """How a run's steps ended, for a redrive: each step's last status and output, and
    for each fan-out step the items that succeeded (their last row says so)."""
    steps = await pool.fetch(
        "SELECT DISTINCT ON (step) step, status, output FROM step_events "
        "WHERE run_id = $1 AND batch = '' AND item IS NULL ORDER BY step, at DESC, seq DESC",
        run_id,
    )
    items = await pool.fetch(
        "SELECT step, item FROM (SELECT DISTINCT ON (step, item) step, item, status "
        "FROM step_events WHERE run_id = $1 AND item IS NOT NULL "
        "ORDER BY step, item, at DESC, seq DESC) last WHERE status = 'succeeded'",
        run_id,
    )
    done: dict[str, list[str]] = {}
    for row in items:
        done.setdefault(row["step"], []).append(row["item"])
    return {r["step"]: {"status": r["status"], "output": r["output"]} for r in steps}, done


async def succeeded_items(pool: asyncpg.Pool, run: str, step: str) -> set[str]:
    """The items of a fan-out step done in `run` or in the runs it redrove: what a
    redrive of `run` leaves out (a redrive runs only the items not done before it)."""
    done: set[str] = set()
    seen: set[str] = set()
    current: str | None = run
    while current and current not in seen and len(seen) < REDRIVE_CHAIN:
        seen.add(current)
        found = await find_run(pool, current)
        if found is None:
            break
        rows = await pool.fetch(
            "SELECT item FROM (SELECT DISTINCT ON (item) item, status FROM step_events "
            "WHERE run_id = $1 AND step = $2 AND item IS NOT NULL "
            "ORDER BY item, at DESC, seq DESC) last WHERE status = 'succeeded'",
            found["run_id"],
            step,
        )
        done.update(row["item"] for row in rows)
        current = found.get("redrive_of")
    return done


async def last_outcome(pool: asyncpg.Pool, run: str, step: str, item: str | None) -> Row | None:
    """The last recorded outcome of a step (or of one item of a fan-out): its status,
    attempt, output and error; None when there is none yet."""
    found = await find_run(pool, run)
    if found is None:
        return None
    row = await pool.fetchrow(
        "SELECT status, attempt, output, error FROM step_events "
        "WHERE run_id = $1 AND step = $2 AND item IS NOT DISTINCT FROM $3 "
        "AND status IN ('succeeded', 'failed', 'skipped', 'cancelled') "
        "ORDER BY at DESC, seq DESC LIMIT 1",
        found["run_id"],
        step,
        item,
    )
    return dict(row) if row else None


async def keep_definition(pool: asyncpg.Pool, sha256: str, text: str) -> None:
    """Keep a runbook file's text under its digest (once: the same bytes, the same row)."""
    await pool.execute(
        "INSERT INTO definitions (sha256, text) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        sha256,
        text,
    )


async def links(pool: asyncpg.Pool, run_id: str) -> list[Row]:
    """The run's hash chain, in the order written: every row with its table. A row
    that lost its link (set to NULL by hand) is kept, after the others: the chain does
    not verify with it, and it cannot quietly drop out of the record."""
    steps = await pool.fetch("SELECT * FROM step_events WHERE run_id = $1", run_id)
    audit = await pool.fetch("SELECT * FROM audit_log WHERE run_id = $1", run_id)
    rows = [
        {
            **chain.link(table, dict(r)),
            "prev_hash": r["prev_hash"],
            "hash": r["hash"],
            "link": r["link"],
        }
        for table, found in (("step", steps), ("audit", audit))
        for r in found
    ]
    return sorted(rows, key=lambda r: (r["link"] is None, r["link"] or 0, r["table"], r["seq"]))


async def chained(pool: asyncpg.Pool, run: Row, links: list[Row]) -> bool:
    """Whether the run was recorded with hash chains: its rows carry links, it has a
    chain head, or it started after the store had chains. Such a run's bundle always
    carries its record; only a run recorded before chains has none."""
    if any(r["link"] is not None for r in links):
        return True
    if await pool.fetchval("SELECT 1 FROM chain_heads WHERE run_id = $1", run["run_id"]):
        return True
    since = await pool.fetchval("SELECT applied_at FROM schema_migrations WHERE name LIKE '0005_%'")
    return since is not None and run["started_at"] >= since


async def events(pool: asyncpg.Pool, run_id: str) -> tuple[list[Row], list[Row]]:
    steps = await pool.fetch(
        "SELECT * FROM step_events WHERE run_id = $1 ORDER BY at, batch, seq", run_id
    )
    audit = await pool.fetch("SELECT * FROM audit_log WHERE run_id = $1 ORDER BY seq", run_id)
    return [dict(r) for r in steps], [dict(r) for r in audit]


def _schedule(started_by: str) -> str | None:
    """The schedule that started a run (`started_by: schedule:<ID>`), else None."""
    return started_by.removeprefix("schedule:") if started_by.startswith("schedule:") else None


def _iso(value: datetime | None) -> str | None:
    return iso(value)


async def history(pool: asyncpg.Pool, run: str, depth: int = 0) -> list[HistoryEvent] | None:
    """`history --format json`: [{at, event, step, item, attempt, actor, detail}], oldest first."""
    found = await find_run(pool, run)
    if found is None:
        return None
    earlier: list[HistoryEvent] = []
    if found.get("redrive_of") and depth < REDRIVE_CHAIN:
        # A redrive's history starts with that of the run it continued.
        earlier = await history(pool, found["redrive_of"], depth + 1) or []
    steps, audit = await events(pool, found["run_id"])
    # By time, then by who numbered the row: the run's own rows (batch '') keep their
    # order, and the rows of a fan-out's items fall in between where they happened.
    merged: list[tuple[tuple[Any, str, int], HistoryEvent]] = []
    for e in steps:
        detail = e["error"] if e["error"] else None
        merged.append(
            (
                (e["at"], e["batch"], e["seq"]),
                {
                    "at": _iso(e["at"]) or "",
                    # compensation_started / _succeeded / _failed keep their own names.
                    "event": e["status"]
                    if str(e["status"]).startswith("compensation_")
                    else f"step_{e['status']}",
                    "step": e["step"],
                    "item": e["item"],
                    "attempt": e["attempt"],
                    "actor": e.get("worker"),  # the worker that ran the attempt, pid@host
                    "detail": detail,
                },
            )
        )
    for a in audit:
        detail = a["detail"] or {}
        merged.append(
            (
                (a["at"], "", a["seq"]),
                {
                    "at": _iso(a["at"]) or "",
                    "event": a["action"],
                    "step": detail.get("step"),
                    "item": None,
                    "attempt": None,
                    "actor": a["actor"],
                    "detail": detail,
                },
            )
        )
    return earlier + [event for _, event in sorted(merged, key=lambda pair: pair[0])]


async def list_runs(
    pool: asyncpg.Pool, kind: str | None, state: str | None, limit: int
) -> list[Row]:
    rows = await pool.fetch(
        "SELECT workflow_id, run_id, name, kind, status, started_by, started_at, finished_at "
        "FROM runs "
        "WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2) "
        "ORDER BY started_at DESC LIMIT $3",
        kind,
        state,
        limit,
    )
    return [{**run_identity(r), "schedule": _schedule(r["started_by"])} for r in rows]


async def claim_once(
    pool: asyncpg.Pool, table: str, key: str, workflow_id: str, temporal_run_id: str
) -> tuple[str, str]:
    """Claim `key` in `table` (spent_proofs by nonce, redrive_claims by the run redriven)
    for one execution, atomically; the (workflow id, Temporal run id) that holds it,
    which is this one unless another execution claimed it first. A retry of the same
    execution finds its own claim."""
    column = {"spent_proofs": "nonce", "redrive_claims": "redrive_of"}[table]
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            f"INSERT INTO {table} ({column}, workflow_id, temporal_run_id) "
            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            storable_text(key),
            workflow_id,
            temporal_run_id,
        )
        row = await connection.fetchrow(
            f"SELECT workflow_id, temporal_run_id FROM {table} WHERE {column} = $1",
            storable_text(key),
        )
    assert row is not None
    return str(row["workflow_id"]), str(row["temporal_run_id"])


async def claim_delivery(
    pool: asyncpg.Pool, key: str, workflow_id: str, channel: str, event: str, attempt: int
) -> str | None:
    """Claim a notification's key for this attempt: None when it is this attempt's to
    send (never claimed, or an earlier attempt failed before the far end had it); else
    the status that holds it, `sent`, or `sending` when a worker stopped mid-way."""
    # One statement claims atomically; the status is read only when another holds it.
    async with pool.acquire() as connection:
        claimed = await connection.fetchval(
            "INSERT INTO notify_deliveries (key, workflow_id, channel, event, status, attempt) "
            "VALUES ($1, $2, $3, $4, 'sending', $5) "
            "ON CONFLICT (key) DO UPDATE SET status = 'sending', attempt = EXCLUDED.attempt, "
            "claimed_at = now() WHERE notify_deliveries.status = 'failed' RETURNING key",
            storable_text(key),
            storable_text(workflow_id),
            storable_text(channel),
            storable_text(event),
            attempt,
        )
        if claimed is not None:
            return None
        status = await connection.fetchval(
            "SELECT status FROM notify_deliveries WHERE key = $1", storable_text(key)
        )
    return str(status)


async def finish_delivery(pool: asyncpg.Pool, key: str, status: str, answer: str) -> None:
    """Mark a claimed notification `sent`, or `failed` (so a later attempt may send it)."""
    await pool.execute(
        "UPDATE notify_deliveries SET status = $2, answer = $3, finished_at = now() WHERE key = $1",
        storable_text(key),
        status,
        storable_text(answer[:1000]),
    )
