"""A fan-out from a file (`foreach: {from_file: PATH, format: ...}`), as workflow code sees it.

Workflow code: no I/O. The file is read on the worker by the inventory_open and
inventory_page activities (runner/steps/inventory.py); the run holds only its size
and sha256, and each batch its own page. So 100,000 items never pass through one
payload, and no history holds them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.engine import render
from runner.plan.model import RetryPolicy, Timeouts

# Reading a file is quick; a store that is down (for a redrive) is waited out a while.
RETRY = RetryPolicy(
    max_attempts=10,
    initial_interval_ms=1000,
    backoff_coefficient=2.0,
    max_interval_ms=30_000,
    non_retryable_errors=(
        "InventoryNotFound",
        "InventoryUnreadable",
        "InventoryInvalid",
        "InventoryTooLarge",
        "InventoryChanged",
        "InventoryConfig",
    ),
)
TIMEOUTS = Timeouts(start_to_close_ms=300_000)
FORMATS = ("lines", "json", "yaml")


def from_file(foreach: Any) -> Mapping[str, Any] | None:
    """The `{from_file, format}` of a fan-out from a file; None for a list or template."""
    if isinstance(foreach, Mapping) and "from_file" in foreach:
        return foreach
    return None


def open_request(
    foreach: Mapping[str, Any], context: Mapping[str, Any], step: str, redrive_of: str | None
) -> dict[str, Any]:
    """What inventory_open and every inventory_page of this fan-out are asked with."""
    path = render.render(foreach["from_file"], context)
    if not isinstance(path, str) or not path.strip():
        raise render.TemplateFailure(
            f"from_file gave {str(path)[:200]!r}, not a file path; give a path on the worker"
        )
    return {
        "path": path,
        "format": str(foreach.get("format") or "lines"),
        "step": step,
        "redrive_of": redrive_of or "",
    }


def snapshot(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the items' templates may read, as plain JSON for a batch: the inputs, the
    steps and the run (secrets stay references; the batch makes its own)."""
    steps = context["steps"]
    return {
        "inputs": dict(context["inputs"]),
        "steps": {sid: dict(steps[sid]) for sid in steps},
        "run": dict(context["run"]),
    }
