"""What the interpreter counts: steps and items by outcome, and how long steps took.

Recorded through the workflow's metric meter, which the SDK leaves silent while a
run is replayed, so each ending is counted once, by the worker that saw it happen,
and nothing here reaches history. A worker started with `--metrics-port` serves
them with the SDK's own metrics; without it they cost nothing.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

STEPS = "qlrf_steps"  # served as qlrf_steps_total
STEP_SECONDS = "qlrf_step_duration_seconds"
ITEMS = "qlrf_items"  # served as qlrf_items_total
# The buckets of STEP_SECONDS: from an in-workflow assert to an hour-long drill step.
STEP_BUCKETS = (0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def step_ended(step_type: str, status: str, started: datetime | None) -> None:
    """A step reached an ending (succeeded, failed, cancelled or skipped)."""
    meter = workflow.metric_meter()
    meter.create_counter(STEPS, "Steps that ended, by type and status").with_additional_attributes(
        {"type": step_type, "status": status}
    ).add(1)
    if started is not None and status in ("succeeded", "failed"):
        seconds = max((workflow.now() - started).total_seconds(), 0.0)
        meter.create_histogram_float(
            STEP_SECONDS, "How long a step ran, all attempts included", "s"
        ).with_additional_attributes({"type": step_type}).record(seconds)


def item_ended(status: str) -> None:
    """One item of a fan-out reached an ending."""
    workflow.metric_meter().create_counter(
        ITEMS, "Fan-out items that ended, by status"
    ).with_additional_attributes({"status": status}).add(1)
