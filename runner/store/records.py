"""Writing and reading the run store. Every write is idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from runner.store.evidence import run_identity
from runner.times import iso

_RUN_COLUMNS = (
    "run_id",
    "workflow_id",
    "name",
    "kind",
    "plan_hash",
    "definition_file",
    "definition_sha256",
    "definition_text",
    "inputs",
    "status",
    "started_by",
    "started_at",
    "finished_at",
    "outputs",
    "error",
    "redrive_of",
)


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


async def write(pool: asyncpg.Pool, batch: dict[str, Any]) -> int:
    """Write one batch from a run's outbox in one transaction; returns the rows added."""
    added = 0
    async with pool.acquire() as connection, connection.transaction():
        run = batch.get("run")
        if run is not None:
            values = [_time(run.get(c)) if c.endswith("_at") else run.get(c) for c in _RUN_COLUMNS]
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
        for event in batch.get("events", []):
            if event["table"] == "step":
                result = await connection.execute(
                    "INSERT INTO step_events (run_id, batch, seq, at, step, item, attempt, "
                    "status, started_at, finished_at, output, error) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                    "ON CONFLICT (run_id, batch, seq) DO NOTHING",
                    run_id,
                    source,
                    event["seq"],
                    _time(event["at"]),
                    event["step"],
                    event.get("item"),
                    event.get("attempt"),
                    event["status"],
                    _time(event.get("started_at")),
                    _time(event.get("finished_at")),
                    event.get("output"),
                    event.get("error"),
                )
            else:
                result = await connection.execute(
                    "INSERT INTO audit_log (run_id, seq, at, actor, action, detail) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, seq) DO NOTHING",
                    run_id,
                    event["seq"],
                    _time(event["at"]),
                    event.get("actor"),
                    event["action"],
                    event.get("detail"),
                )
            added += int(result.rsplit(" ", 1)[-1])
    return added


async def find_run(pool: asyncpg.Pool, run: str) -> dict[str, Any] | None:
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


async def outcomes(
    pool: asyncpg.Pool, run_id: str
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
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


async def last_outcome(
    pool: asyncpg.Pool, run: str, step: str, item: str | None
) -> dict[str, Any] | None:
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


async def events(
    pool: asyncpg.Pool, run_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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


async def history(pool: asyncpg.Pool, run: str, depth: int = 0) -> list[dict[str, Any]] | None:
    """`history --format json`: [{at, event, step, item, attempt, actor, detail}], oldest first."""
    found = await find_run(pool, run)
    if found is None:
        return None
    earlier: list[dict[str, Any]] = []
    if found.get("redrive_of") and depth < 50:
        # A redrive's history starts with that of the run it continued.
        earlier = await history(pool, found["redrive_of"], depth + 1) or []
    steps, audit = await events(pool, found["run_id"])
    # By time, then by who numbered the row: the run's own rows (batch '') keep their
    # order, and the rows of a fan-out's items fall in between where they happened.
    merged: list[tuple[tuple[Any, str, int], dict[str, Any]]] = []
    for e in steps:
        detail = e["error"] if e["error"] else None
        merged.append(
            (
                (e["at"], e["batch"], e["seq"]),
                {
                    "at": _iso(e["at"]),
                    # compensation_started / _succeeded / _failed keep their own names.
                    "event": e["status"]
                    if str(e["status"]).startswith("compensation_")
                    else f"step_{e['status']}",
                    "step": e["step"],
                    "item": e["item"],
                    "attempt": e["attempt"],
                    "actor": None,
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
                    "at": _iso(a["at"]),
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
) -> list[dict[str, Any]]:
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
