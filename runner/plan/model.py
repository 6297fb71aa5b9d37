"""The Plan: what the interpreter runs. JSON-serialisable, hashed, knows neither YAML nor Temporal.

Durations are integer milliseconds. A node's `source` is `file:line:col`, kept for
error messages; it is left out of `plan_hash`, which identifies behaviour, so that
comments, formatting and the path a file is opened by do not change a run's identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

PLAN_VERSION = 1


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    initial_interval_ms: int
    backoff_coefficient: float
    max_interval_ms: int
    non_retryable_errors: tuple[str, ...]


@dataclass(frozen=True)
class Timeouts:
    start_to_close_ms: int | None = None
    schedule_to_close_ms: int | None = None
    schedule_to_start_ms: int | None = None
    heartbeat_ms: int | None = None


@dataclass(frozen=True)
class Wave:
    name: str
    size: int | None  # cumulative count, or
    size_percent: float | None  # cumulative percentage of the list
    approval: bool = False
    pause_ms: int | None = None
    approvers: tuple[str, ...] = ()
    min_approvals: int = 1
    timeout_ms: int | None = None


@dataclass(frozen=True)
class FanOut:
    foreach: Any  # a template string or a literal list
    as_: str
    concurrency: int | None
    waves: tuple[Wave, ...]
    max_failures: int | None
    max_failures_percent: float | None


@dataclass(frozen=True)
class Compensation:
    type: str
    runs_in: str
    activity: str | None
    name: str
    with_: dict[str, Any]
    retry: RetryPolicy | None
    timeouts: Timeouts | None


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    type: str
    runs_in: str  # activity | workflow | child_workflow
    activity: str | None
    with_: dict[str, Any]
    needs: tuple[str, ...]
    trigger_rule: str
    when: Any  # None (always), a bool, or a template
    on_failure: str
    retry: RetryPolicy | None  # None for steps evaluated in the workflow
    timeouts: Timeouts | None
    fanout: FanOut | None
    compensate: Compensation | None
    section: str  # steps | finally
    source: str
    child: Plan | None = None  # a `runbook` step's compiled child runbook


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str
    required: bool
    has_default: bool
    default: Any
    enum: tuple[Any, ...] | None
    items_type: str | None
    description: str


@dataclass(frozen=True)
class Plan:
    name: str
    kind: str
    description: str
    labels: dict[str, str]
    source_file: str
    inputs: tuple[InputSpec, ...]
    concurrency: int | None
    timeout_ms: int | None
    nodes: tuple[Node, ...]
    finally_nodes: tuple[Node, ...]
    outputs: dict[str, Any]
    version: int = PLAN_VERSION
    plan_hash: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    def canonical_json(self) -> str:
        return canonical(self.to_dict())

    def node(self, node_id: str) -> Node:
        for node in (*self.nodes, *self.finally_nodes):
            if node.id == node_id:
                return node
        raise KeyError(node_id)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name.rstrip("_"): _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: the same data always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _without_sources(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_sources(v)
            for k, v in value.items()
            if k not in ("source", "source_file", "plan_hash")
        }
    if isinstance(value, list):
        return [_without_sources(v) for v in value]
    return value


def compute_hash(plan_dict: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the plan, without source locations."""
    text = canonical(_without_sources(plan_dict))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inputs_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(values).encode("utf-8")).hexdigest()
