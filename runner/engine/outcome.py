"""How a run ends: its status, its error, and its outputs (rendered once every step ended)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runner import durations
from runner.contract import PAYLOAD_LIMIT, payload_size
from runner.engine import render
from runner.engine.failures import ERROR_TEXT_LIMIT, StepFailed
from runner.engine.run_state import RunState
from runner.plan.model import Node


def timed_out(run: RunState) -> None:
    """The run's deadline passed: say so now; the rest still ends (compensation, finally)."""
    run.status = "timed_out"
    timeout_ms = run.plan.timeout_ms or 0
    run.error = {
        "type": "RunTimedOut",
        "message": f"the run did not finish within its timeout of "
        f"{durations.format_ms(timeout_ms)}",
        "step": None,
        "source": run.plan.source_file,
    }


def refuse(run: RunState, error_type: str, message: str, *, now: datetime) -> None:
    """The run may not start: it fails at once, with no step run."""
    run.status = "failed"
    run.finished_at = now
    run.error = {"type": error_type, "message": message, "step": None, "source": None}


def conclude(
    run: RunState,
    failure: tuple[Node, StepFailed | None] | None,
    *,
    cancelled: bool,
    now: datetime,
    outputs_on_failure: bool = False,
) -> None:
    """Set the run's final status, error and outputs. With `outputs_on_failure`, a failed
    run keeps the outputs it can render (a drill that missed its objective still says
    what its RTO was)."""
    run.finished_at = now
    if cancelled:
        run.status = "cancelled"
        run.error = run.error or {
            "type": "RunCancelled",
            "message": "the run was cancelled",
            "step": None,
            "source": None,
        }
        return
    if run.status == "timed_out":
        return
    if failure is not None:
        node, exc = failure
        error_type = exc.error_type if exc is not None else "StepFailed"
        message = exc.message if exc is not None else "the step failed"
        run.status = "failed"
        run.error = {
            "type": error_type,
            "message": f"step '{node.id}' ({node.type}, {node.source}) failed with "
            f"{error_type}: {message}"[:ERROR_TEXT_LIMIT],
            "step": node.id,
            "source": node.source,
        }
        if outputs_on_failure:
            run.outputs = partial_outputs(run)
        return
    run.status = "succeeded"
    try:
        outputs = render.render(run.plan.outputs or {}, run.context())
    except render.TemplateFailure as exc:
        _fail(run, "TemplateError", f"outputs: {exc}")
        return
    size = payload_size(outputs)
    if size > PAYLOAD_LIMIT:
        _fail(
            run,
            "OutputsTooLarge",
            f"the run's outputs are {size} bytes, over the {PAYLOAD_LIMIT}-byte limit; return less",
        )
        return
    run.outputs = outputs


def partial_outputs(run: RunState) -> Any:
    """Each output that renders, alone; those that read what never ran are left out.
    None when none renders, or when they are too large to keep."""
    declared = run.plan.outputs or {}
    if not isinstance(declared, dict):
        return None
    found: dict[str, Any] = {}
    context = run.context()
    for name, template in declared.items():
        try:
            found[name] = render.render(template, context)
        except render.TemplateFailure:
            continue
    if not found or payload_size(found) > PAYLOAD_LIMIT:
        return None
    return found


def _fail(run: RunState, error_type: str, message: str) -> None:
    run.status = "failed"
    run.error = {
        "type": error_type,
        "message": message,
        "step": None,
        "source": run.plan.source_file,
    }
