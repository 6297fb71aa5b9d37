"""Runs newest first, through Temporal visibility: `qlrf-run list` and the runs page."""

from __future__ import annotations

from runner.app.context import Context
from runner.client.runs import status_query
from runner.client.state import KIND_KEY, NAME_KEY, SCHEDULED_BY_KEY, closed_status
from runner.contract.messages import JsonObject
from runner.dsl.language import KINDS
from runner.errors import QlrfError
from runner.times import iso

RUN_KINDS = tuple(sorted(KINDS))
RUN_STATES = ("running", "succeeded", "failed", "cancelled", "timed_out", "terminated")


async def runs(
    ctx: Context,
    kind: str | None = None,
    state: str | None = None,
    limit: int = 50,
    name: str | None = None,
) -> list[JsonObject]:
    """One row per run: ids, name, kind, status, times, and the schedule that started it.
    `name` keeps the runs of runbooks whose name contains it."""
    # What goes into the visibility query is one of the known words, never text as
    # given: a front end passes a person's filter through here.
    if kind is not None and kind not in RUN_KINDS:
        raise QlrfError(f"kind must be one of {', '.join(RUN_KINDS)}, not {kind!r}")
    if state is not None and state not in RUN_STATES:
        raise QlrfError(f"status must be one of {', '.join(RUN_STATES)}, not {state!r}")
    rows: list[JsonObject] = []
    query = status_query(kind, state)
    async for wf in ctx.client.list_workflows(query, limit=None if name else limit):
        attrs = wf.typed_search_attributes
        found = attrs.get(NAME_KEY)
        if name and name not in (found or ""):
            continue
        rows.append(
            {
                "run_id": wf.id,
                "temporal_run_id": wf.run_id,
                "name": found,
                "kind": attrs.get(KIND_KEY),
                "status": closed_status(wf.status),
                "started_at": iso(wf.start_time),
                "finished_at": iso(wf.close_time),
                # Temporal marks the runs a schedule started with its id.
                "schedule": attrs.get(SCHEDULED_BY_KEY),
            }
        )
        if len(rows) >= limit:
            break
    return rows
