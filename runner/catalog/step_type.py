"""A step type: its definition file's facts, and the capabilities the engine acts on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Where a step of a type executes.
RUNS_IN = ("activity", "workflow", "child_workflow")
# The in-workflow evaluators a `runs_in: workflow` type may name.
EVALUATORS = ("timer", "condition", "gate")


@dataclass(frozen=True)
class Capabilities:
    """What a step type may do, declared under `capabilities:` in its definition.

    The checks and the engine read these flags; none of them looks at a type's name.
    """

    fan_out: bool = False  # may be the step of a `foreach`
    script: str | None = None  # the `with` key holding a bash script; its {{ }} become env vars
    argv: str | None = None  # the `with` key holding a program and its arguments (no shell)
    drains_store: bool = False  # needs the run store, holding every event up to its start
    evaluator: str | None = None  # for runs_in: workflow: timer | condition | gate

    @property
    def gate(self) -> bool:
        """An approval gate: its `with` names approvers, groups and modifiable inputs."""
        return self.evaluator == "gate"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fan_out": self.fan_out,
            "script": self.script,
            "argv": self.argv,
            "drains_store": self.drains_store,
            "evaluator": self.evaluator,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capabilities:
        return cls(
            fan_out=bool(data.get("fan_out", False)),
            script=data.get("script"),
            argv=data.get("argv"),
            drains_store=bool(data.get("drains_store", False)),
            evaluator=data.get("evaluator"),
        )


@dataclass(frozen=True)
class StepType:
    """A step type: its definition file, where its work runs, and what it may do."""

    type: str
    description: str
    runs_in: str  # activity | workflow | child_workflow
    activity: str | None
    errors: tuple[str, ...]
    params: Mapping[str, Any]
    output: Mapping[str, Any]
    retry: Mapping[str, Any]
    timeout: Mapping[str, Any]
    capabilities: Capabilities = field(default_factory=Capabilities)
    source: str = field(default="", compare=False)
