"""The Plan: what the interpreter runs. JSON-serialisable, hashed, knows neither YAML nor Temporal.

Durations are integer milliseconds. A node's `source` is `file:line:col`, kept for
error messages; it is left out of `plan_hash`, which identifies behaviour, so that
comments, formatting and the path a file is opened by do not change a run's identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.canonical import canonical_bytes, canonical_text
from runner.catalog.step_type import Capabilities
from runner.contract.messages import Declaration, Inputs, JsonObject
from runner.plan.secret_positions import Position, secret_positions

PLAN_VERSION = 1

# Plans compiled before step types declared capabilities carry none; the built-in
# types of that time had these. Only such plans (runs started by an older version,
# and the golden histories) ever use this table.
_LEGACY_CAPABILITIES = {
    "shell": Capabilities(fan_out=True, script="script", argv="command"),
    "http": Capabilities(fan_out=True),
    "notify": Capabilities(fan_out=True),
    "sql": Capabilities(fan_out=True),
    "evidence": Capabilities(drains_store=True),
    "sleep": Capabilities(evaluator="timer"),
    "assert": Capabilities(evaluator="condition"),
    "approval": Capabilities(evaluator="gate"),
}


def _secrets(data: Mapping[str, Any], capabilities: Capabilities) -> tuple[Position, ...]:
    found = data.get("secrets")
    if isinstance(found, list):
        return tuple(tuple(p) for p in found)
    # A plan compiled before positions were recorded: find them the same way now.
    return secret_positions(data.get("with") or {}, capabilities.script)


def _capabilities(data: Mapping[str, Any]) -> Capabilities:
    found = data.get("capabilities")
    if isinstance(found, Mapping):
        return Capabilities.from_dict(found)
    return _LEGACY_CAPABILITIES.get(str(data.get("type")), Capabilities())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    initial_interval_ms: int
    backoff_coefficient: float
    max_interval_ms: int
    non_retryable_errors: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(data["max_attempts"]),
            initial_interval_ms=int(data["initial_interval_ms"]),
            backoff_coefficient=float(data["backoff_coefficient"]),
            max_interval_ms=int(data["max_interval_ms"]),
            non_retryable_errors=tuple(data["non_retryable_errors"]),
        )


@dataclass(frozen=True)
class Timeouts:
    start_to_close_ms: int | None = None
    schedule_to_close_ms: int | None = None
    schedule_to_start_ms: int | None = None
    heartbeat_ms: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeouts:
        return cls(
            start_to_close_ms=data.get("start_to_close_ms"),
            schedule_to_close_ms=data.get("schedule_to_close_ms"),
            schedule_to_start_ms=data.get("schedule_to_start_ms"),
            heartbeat_ms=data.get("heartbeat_ms"),
        )


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
    # The wave's own failure budget (count, or percentage of the wave); None: the default.
    max_failures: int | None = None
    max_failures_percent: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Wave:
        return cls(
            name=data["name"],
            size=data.get("size"),
            size_percent=data.get("size_percent"),
            approval=bool(data.get("approval", False)),
            pause_ms=data.get("pause_ms"),
            approvers=tuple(data.get("approvers") or ()),
            min_approvals=int(data.get("min_approvals") or 1),
            timeout_ms=data.get("timeout_ms"),
            max_failures=data.get("max_failures"),
            max_failures_percent=data.get("max_failures_percent"),
        )


@dataclass(frozen=True)
class FanOut:
    foreach: Any  # a template string or a literal list
    as_: str
    concurrency: int | None
    waves: tuple[Wave, ...]
    max_failures: int | None
    max_failures_percent: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FanOut:
        return cls(
            foreach=data["foreach"],
            as_=data["as"],
            concurrency=data.get("concurrency"),
            waves=tuple(Wave.from_dict(w) for w in data.get("waves") or ()),
            max_failures=data.get("max_failures"),
            max_failures_percent=data.get("max_failures_percent"),
        )


@dataclass(frozen=True)
class Compensation:
    type: str
    runs_in: str
    activity: str | None
    name: str
    with_: JsonObject  # the step's `with`, templates unrendered
    retry: RetryPolicy | None
    timeouts: Timeouts | None
    capabilities: Capabilities = field(default_factory=Capabilities)
    secrets: tuple[Position, ...] = ()  # positions in `with` that name a secret

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Compensation:
        capabilities = _capabilities(data)
        return cls(
            type=data["type"],
            runs_in=data["runs_in"],
            activity=data.get("activity"),
            name=data["name"],
            with_=dict(data.get("with") or {}),
            retry=_optional(RetryPolicy.from_dict, data.get("retry")),
            timeouts=_optional(Timeouts.from_dict, data.get("timeouts")),
            capabilities=capabilities,
            secrets=_secrets(data, capabilities),
        )


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    type: str
    runs_in: str  # activity | workflow | child_workflow
    activity: str | None
    with_: JsonObject  # the step's `with`, templates unrendered
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
    capabilities: Capabilities = field(default_factory=Capabilities)
    secrets: tuple[Position, ...] = ()  # positions in `with` that name a secret
    locks: tuple[str, ...] = ()  # lock key templates the step holds while it runs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Node:
        capabilities = _capabilities(data)
        return cls(
            id=data["id"],
            name=data["name"],
            type=data["type"],
            runs_in=data["runs_in"],
            activity=data.get("activity"),
            with_=dict(data.get("with") or {}),
            needs=tuple(data.get("needs") or ()),
            trigger_rule=data["trigger_rule"],
            when=data.get("when"),
            on_failure=data["on_failure"],
            retry=_optional(RetryPolicy.from_dict, data.get("retry")),
            timeouts=_optional(Timeouts.from_dict, data.get("timeouts")),
            fanout=_optional(FanOut.from_dict, data.get("fanout")),
            compensate=_optional(Compensation.from_dict, data.get("compensate")),
            section=data["section"],
            source=data.get("source", ""),
            child=_optional(Plan.from_dict, data.get("child")),
            capabilities=capabilities,
            secrets=_secrets(data, capabilities),
            locks=tuple(str(k) for k in data.get("locks") or ()),
        )


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        enum = data.get("enum")
        return cls(
            name=data["name"],
            type=data["type"],
            required=bool(data.get("required", False)),
            has_default=bool(data.get("has_default", False)),
            default=data.get("default"),
            enum=tuple(enum) if enum is not None else None,
            items_type=data.get("items_type"),
            description=data.get("description", ""),
        )

    def declaration(self) -> Declaration:
        """The input's declaration as runbooks write it, for checking a value against it."""
        decl: Declaration = {"type": self.type, "required": self.required}
        if self.has_default:
            decl["default"] = self.default
        if self.enum is not None:
            decl["enum"] = list(self.enum)
        if self.items_type:
            decl["items"] = {"type": self.items_type}
        return decl


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
    outputs: JsonObject  # the runbook's `outputs`, templates unrendered
    version: int = PLAN_VERSION
    plan_hash: str = field(default="")
    locks: tuple[str, ...] = ()  # lock key templates the run holds from start to end
    # The runbook's own notification routes: [{on: [event...], to: [channel...]}]
    notify: tuple[JsonObject, ...] = ()

    def to_dict(self) -> JsonObject:
        found: JsonObject = _jsonable(self)
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The typed Plan of its JSON form (as it crosses into Temporal); the inverse of
        to_dict. Plans written by earlier versions of qlrf-run read too."""
        return cls(
            name=data["name"],
            kind=data["kind"],
            description=data.get("description", ""),
            labels=dict(data.get("labels") or {}),
            source_file=data.get("source_file", ""),
            inputs=tuple(InputSpec.from_dict(i) for i in data.get("inputs") or ()),
            concurrency=data.get("concurrency"),
            timeout_ms=data.get("timeout_ms"),
            nodes=tuple(Node.from_dict(n) for n in data.get("nodes") or ()),
            finally_nodes=tuple(Node.from_dict(n) for n in data.get("finally_nodes") or ()),
            outputs=dict(data.get("outputs") or {}),
            version=int(data.get("version", PLAN_VERSION)),
            plan_hash=data.get("plan_hash", ""),
            locks=tuple(str(k) for k in data.get("locks") or ()),
            notify=tuple(dict(r) for r in data.get("notify") or ()),
        )

    def declarations(self) -> dict[str, Declaration]:
        """Every input's declaration by name."""
        return {spec.name: spec.declaration() for spec in self.inputs}

    def canonical_json(self) -> str:
        return canonical(self.to_dict())

    def node(self, node_id: str) -> Node:
        for node in (*self.nodes, *self.finally_nodes):
            if node.id == node_id:
                return node
        raise KeyError(node_id)


def _optional(build: Any, data: Any) -> Any:
    return None if data is None else build(data)


def to_json(value: Any) -> Any:
    """A plan object (or part of one) as JSON-compatible data, as in Plan.to_dict()."""
    return _jsonable(value)


# Fields left out of a plan's JSON while empty: plans that do not use them keep the
# plan hash they had before the fields existed.
_OMITTED_WHEN_EMPTY = frozenset(("locks", "notify"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Capabilities):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name.rstrip("_"): _jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) or f.name not in _OMITTED_WHEN_EMPTY
        }
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


canonical = canonical_text


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


def compute_hash(plan_dict: JsonObject) -> str:
    """sha256 over the canonical JSON of the plan, without source locations."""
    text = canonical(_without_sources(plan_dict))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inputs_hash(values: Inputs) -> str:
    return hashlib.sha256(canonical_bytes(values)).hexdigest()
