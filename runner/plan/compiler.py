"""Compile a checked runbook (plain data, no YAML) into a Plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from runner import durations
from runner.catalog.registry import Registry
from runner.catalog.step_type import StepType
from runner.plan import policy, waves
from runner.plan.model import (
    Compensation,
    FanOut,
    InputSpec,
    Node,
    Plan,
    RetryPolicy,
    Timeouts,
    Wave,
    compute_hash,
)
from runner.plan.secret_positions import secret_positions

# (path) -> "line:col", so the compiler can cite sources without knowing YAML.
Locate = Callable[[tuple[Any, ...]], str]
# (the `with` of a runbook step, the step id) -> the child's compiled Plan.
ResolveChild = Callable[[Mapping[str, Any], str], Plan]


def _ms(value: Any) -> int | None:
    return durations.parse_ms(value) if isinstance(value, str) else None


def _retry(layers: list[Any]) -> RetryPolicy:
    merged = policy.merge_retry(*layers)
    return RetryPolicy(
        max_attempts=int(merged["max_attempts"]),
        initial_interval_ms=durations.parse_ms(merged["initial_interval"]),
        backoff_coefficient=float(merged["backoff_coefficient"]),
        max_interval_ms=durations.parse_ms(merged["max_interval"]),
        non_retryable_errors=tuple(merged["non_retryable_errors"]),
    )


def _timeouts(layers: list[Any]) -> Timeouts:
    merged = policy.merge_timeouts(*layers)
    return Timeouts(**{f"{k}_ms": durations.parse_ms(str(v)) for k, v in merged.items()})


def _split_size(value: Any) -> tuple[int | None, float | None]:
    amount = waves.parse_amount(value)
    return (None, None) if amount is None else (amount.count, amount.percent)


class Compiler:
    def __init__(
        self,
        registry: Registry,
        data: Mapping[str, Any],
        file: str,
        locate: Locate,
        resolve_child: ResolveChild | None = None,
    ) -> None:
        self.resolve_child = resolve_child
        self.registry = registry
        self.data = data
        self.file = file
        self.locate = locate
        defaults = data.get("defaults") or {}
        self.default_retry = defaults.get("retry")
        self.default_timeout = defaults.get("timeout")

    def _policies(
        self, step_type: StepType, own_retry: Any, own_timeout: Any
    ) -> tuple[RetryPolicy | None, Timeouts | None]:
        if step_type.runs_in != "activity":
            return None, None
        retry = _retry([step_type.retry, self.default_retry, own_retry])
        timeouts = _timeouts([step_type.timeout, self.default_timeout, own_timeout])
        return retry, timeouts

    def _fanout(self, step: Mapping[str, Any]) -> FanOut | None:
        if "foreach" not in step:
            return None
        planned = []
        for i, w in enumerate(step.get("waves") or []):
            size, percent = _split_size(w["size"])
            budget, budget_percent = _split_size(w.get("max_failures"))
            planned.append(
                Wave(
                    name=w.get("name", f"wave-{i + 1}"),
                    size=size,
                    size_percent=percent,
                    approval=bool(w.get("approval", False)),
                    pause_ms=_ms(w.get("pause")),
                    approvers=tuple(w.get("approvers", ())),
                    min_approvals=int(w.get("min_approvals", 1)),
                    timeout_ms=_ms(w.get("timeout")),
                    max_failures=budget,
                    max_failures_percent=budget_percent,
                )
            )
        budget, budget_percent = _split_size(step.get("max_failures"))
        return FanOut(
            foreach=step["foreach"],
            as_=step.get("as", "item"),
            concurrency=step.get("concurrency"),
            waves=tuple(planned),
            max_failures=budget,
            max_failures_percent=budget_percent,
        )

    def _compensation(self, comp: Mapping[str, Any] | None, owner: str) -> Compensation | None:
        if not comp:
            return None
        step_type = self.registry.get(comp["type"])
        retry, timeouts = self._policies(step_type, comp.get("retry"), comp.get("timeout"))
        return Compensation(
            type=step_type.type,
            runs_in=step_type.runs_in,
            activity=step_type.activity,
            name=comp.get("name", f"undo {owner}"),
            with_=dict(comp.get("with") or {}),
            retry=retry,
            timeouts=timeouts,
            capabilities=step_type.capabilities,
            secrets=secret_positions(comp.get("with") or {}, step_type.capabilities.script),
        )

    def _child(self, step_type: StepType, step: Mapping[str, Any]) -> Plan | None:
        if step_type.runs_in != "child_workflow" or self.resolve_child is None:
            return None
        return self.resolve_child(step.get("with") or {}, step["id"])

    def _nodes(self, section: str) -> tuple[Node, ...]:
        nodes = []
        previous: str | None = None
        for i, step in enumerate(self.data.get(section) or []):
            step_type = self.registry.get(step["type"])
            needs = step.get("needs", [previous] if previous else [])
            retry, timeouts = self._policies(step_type, step.get("retry"), step.get("timeout"))
            nodes.append(
                Node(
                    id=step["id"],
                    name=step.get("name", step["id"]),
                    type=step_type.type,
                    runs_in=step_type.runs_in,
                    activity=step_type.activity,
                    with_=dict(step.get("with") or {}),
                    needs=tuple(needs),
                    trigger_rule=step.get("trigger_rule", "all_succeeded"),
                    when=step.get("when"),
                    on_failure=step.get("on_failure", "fail"),
                    retry=retry,
                    timeouts=timeouts,
                    fanout=self._fanout(step),
                    compensate=self._compensation(step.get("compensate"), step["id"]),
                    section=section,
                    source=f"{self.file}:{self.locate((section, i))}",
                    child=self._child(step_type, step),
                    capabilities=step_type.capabilities,
                    secrets=secret_positions(step.get("with") or {}, step_type.capabilities.script),
                    locks=tuple(step.get("locks") or ()),
                )
            )
            previous = step["id"]
        return tuple(nodes)

    def _inputs(self) -> tuple[InputSpec, ...]:
        specs = []
        for name, decl in (self.data.get("inputs") or {}).items():
            items = decl.get("items")
            specs.append(
                InputSpec(
                    name=name,
                    type=decl["type"],
                    required=bool(decl.get("required", False)),
                    has_default="default" in decl,
                    default=decl.get("default"),
                    enum=tuple(decl["enum"]) if "enum" in decl else None,
                    items_type=items.get("type") if isinstance(items, dict) else None,
                    description=decl.get("description", ""),
                )
            )
        return tuple(specs)

    def compile(self) -> Plan:
        data = self.data
        plan = Plan(
            name=data["name"],
            kind=data["kind"],
            description=data.get("description", ""),
            labels=dict(data.get("labels") or {}),
            source_file=self.file,
            inputs=self._inputs(),
            concurrency=data.get("concurrency"),
            timeout_ms=_ms(data.get("timeout")),
            nodes=self._nodes("steps"),
            finally_nodes=self._nodes("finally"),
            outputs=dict(data.get("outputs") or {}),
            locks=tuple(data.get("locks") or ()),
            notify=tuple(
                {"on": list(r.get("on") or []), "to": list(r.get("to") or [])}
                for r in data.get("notify") or ()
            ),
        )
        return dataclasses.replace(plan, plan_hash=compute_hash(plan.to_dict()))


def compile_plan(
    registry: Registry,
    data: Mapping[str, Any],
    file: str,
    locate: Locate,
    resolve_child: ResolveChild | None = None,
) -> Plan:
    """Compile data that passed validation without errors (anything else is a bug)."""
    return Compiler(registry, data, file, locate, resolve_child).compile()
