"""`qlrf-run redrive RUN`: continue a run that failed, was cancelled or timed out.

The new run, RUN.r<N>, runs the same pinned plan with the inputs the original ended
with (a modify at a gate included). What succeeded is not done again: its steps
are kept with their recorded outputs, which later steps see in templates, and a
fan-out runs only the items that did not succeed, in waves of their own. A step
whose compensation ran was undone, so it runs again; `finally` steps always run.
`--from STEP` runs STEP and everything downstream of it again; `--reapprove` asks
the approval gates again.

How the original ended comes from the run store (every item's row), else from
Temporal's final state. When Temporal no longer has the run, the store has its
definition and inputs, and the plan is compiled from them again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from runner.client.runs import run_status
from runner.contract.messages import JsonObject
from runner.errors import QlrfError
from runner.plan.model import Plan
from runner.plan.redrive import Original, redrive_id
from runner.steps import redrive_source


async def from_store(run: str, original: Original | None) -> Original | None:
    """The original's outcomes from the run store; when Temporal no longer has it, also
    its plan, compiled again from the definition the store kept."""
    from runner.local.postgres import database_url, store_enabled

    if not store_enabled():
        return original
    found, row = await redrive_source.from_store(database_url(), run, original)
    if found is not None and found.plan is None and row is not None:
        found.plan = _compiled(row)
    return found


def _compiled(row: JsonObject) -> Plan:
    """The plan the run ran, compiled again from the definition the store kept."""
    from runner.pipeline import InvalidRunbook, compile_file

    text = row.get("definition_text")
    if not text:
        raise QlrfError(
            f"run {row['workflow_id']}: Temporal no longer has it and the run store kept "
            "no definition for it, so there is nothing to run again"
        )
    name = Path(row.get("definition_file") or "runbook.yaml").name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        try:
            # The plan does not depend on the inputs' values; the run's own come from
            # its row, as they are, and are never parsed again as `k=v` arguments.
            compiled = compile_file(path, require_inputs=False)
        except InvalidRunbook as exc:
            raise QlrfError(
                f"run {row['workflow_id']}: its kept definition no longer compiles "
                f"({exc.diagnostics[0].message if exc.diagnostics else 'invalid'})"
            ) from None
    if row.get("plan_hash") and compiled.plan.plan_hash != row["plan_hash"]:
        raise QlrfError(
            f"run {row['workflow_id']}: its kept definition compiles to another plan with "
            "this version of qlrf-run; redrive it with the version that started it"
        )
    return compiled.plan


async def latest(client: Client, run: str) -> str:
    """The run a redrive of `run` continues: `run` itself, or, when it was redriven
    already, the newest run of that chain (RUN.r1, RUN.r2, ...): each run is
    redriven once, and the next redrive continues from where the last one ended."""
    current = run
    for _ in range(1000):
        after = redrive_id(current)
        status = await run_status(client, after)
        if status is None:
            return current
        if status == WorkflowExecutionStatus.RUNNING:
            raise QlrfError(
                f"run {current} is being redriven already, as {after}, which is still "
                f"running; follow it with `qlrf-run watch {after}`"
            )
        current = after
    raise QlrfError(f"run {run} was redriven 1000 times already")


async def original_of(client: Client, run: str) -> Original:
    found = await from_store(run, await redrive_source.from_temporal(client, run))
    if found is None or found.plan is None:
        raise QlrfError(f"no run {run!r} in Temporal or in the run store")
    return found
