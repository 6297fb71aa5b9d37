"""What crosses the Temporal boundary: the workflow's input, an activity's request and result.

Kept to plain JSON-compatible dataclasses so that histories stay readable and a
plan written by one version of qlrf-run replays in the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_QUEUE = "ql-rf-orchestrator"
WORKFLOW_TYPE = "qlrf.Runbook"
BATCH_WORKFLOW_TYPE = "qlrf.Batch"  # a child workflow that runs one batch of a fan-out
WAITING_ATTRIBUTE = "QlrfWaiting"  # the ids of a run's waiting gates
# name -> Temporal type; every server qlrf-run uses must have them registered.
SEARCH_ATTRIBUTES = {"QlrfName": "Keyword", "QlrfKind": "Keyword", WAITING_ATTRIBUTE: "KeywordList"}
GATE_NOTIFY_ACTIVITY = "gate_notify"
STORE_ACTIVITY = "store_record"  # a local activity: writes a batch of the run's events
# A run's steps and fan-out items at once when the runbook sets no `concurrency`:
# safely under Temporal's limit of 2,000 pending activities per workflow.
DEFAULT_CONCURRENCY = 500


@dataclass
class RunInput:
    plan: dict[str, Any]  # Plan.to_dict()
    inputs: dict[str, Any]
    started_by: str
    definition_sha256: str = ""
    # Members of the groups that gates name, resolved when the run starts.
    groups: dict[str, list[str]] = field(default_factory=dict)
    # The run store: whether to record, and the definition as applied (for evidence).
    record: bool = False
    definition_file: str = ""
    definition_text: str = ""


@dataclass
class StepRequest:
    run_id: str
    step: str
    params: dict[str, Any]  # rendered `with`; secrets still as markers
    script_env: dict[str, str] = field(default_factory=dict)  # shell: QLRF_ARG_n values


@dataclass
class StepResult:
    output: Any
    attempt: int


@dataclass
class BatchItem:
    index: int  # the item's place in the fan-out's list
    key: str  # its name (runner/engine/waves.item_key)
    params: dict[str, Any]  # the step's `with`, rendered for this item
    script_env: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchInput:
    """One batch of a fan-out's wave, run by a child workflow (runner/engine/batch.py)."""

    run_id: str  # the run's workflow id, as activities see it
    step: str
    name: str
    wave: str
    activity: str
    retry: dict[str, Any]
    timeouts: dict[str, Any]
    items: list[BatchItem]
    concurrency: int
    budget: int | None  # failures this batch may still have before the wave stops
    keep_outputs: bool  # return every item's output (small fan-outs only)
    paused: bool = False
    skip: list[int] = field(default_factory=list)  # indexes an operator left out
    store_run_id: str = ""  # the run store's run id; empty when the store is off
