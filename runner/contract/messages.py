"""What people send a run: decisions at its gates and control requests.

Both are public API: the CLI, the web service and a client of the plain Temporal
API (`temporal workflow update execute --name decide ...`) send them as JSON. They
are parsed once, where they arrive (the Update or signal handler), into frozen
dataclasses; a value that does not read is refused with a reason in words, never a
traceback. `to_json()` gives the wire form back, which is also what a signature
covers (runner/trust/claims.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from runner.contract.vocab import ControlAction, DecisionKind

NUL = "\x00"
_DECISIONS = frozenset(k.value for k in DecisionKind)
_ACTIONS = frozenset(a.value for a in ControlAction)
# A JSON object whose shape is someone else's: as people send it (checked by whoever
# reads it), a step's rendered `with` and its output, a plan as JSON, an API's answer.
JsonObject = dict[str, Any]
# A run's inputs by name: values of the JSON types the runbook declares.
Inputs = dict[str, Any]


class Declaration(TypedDict, total=False):
    """An input's declaration as runbooks write it, for checking a value against it."""

    type: str
    required: bool
    default: Any
    enum: list[Any]
    items: JsonObject  # an array's: {"type": ...}


def nul_at(value: Any, where: str = "") -> str | None:
    """Where a NUL character sits in `value` (a key or a text, however deep), or None.

    NUL ends a C string: a command's argument or environment cannot carry it, and
    PostgreSQL's text and jsonb cannot store it. A value with one is refused where it
    comes in, rather than failing later, again and again."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path or "the value"
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                if isinstance(key, str) and NUL in key:
                    return f"a key of {path or 'the value'}"
                stack.append((f"{path}.{key}" if path else str(key), inner))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
    return None


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Decision:
    """approve, reject or modify one gate. `by` is who says they decide (claimed mode),
    or, once the run has checked the signature, the key's principal (`verified`)."""

    gate: str
    decision: DecisionKind
    by: str = ""
    comment: str = ""
    set: Mapping[str, Any] | None = None  # modify: {input: new value}
    proof: Mapping[str, Any] | None = None  # signed mode: {signature, nonce, not_after}
    verified: bool = False
    via: Mapping[str, Any] | None = None  # proven through a service's vouch, or a certificate

    @classmethod
    def parse(cls, raw: Any) -> Decision | str:
        """The decision in `raw`, or why it does not read as one."""
        if not isinstance(raw, Mapping):
            return "a decision is a mapping with gate, decision and by"
        nul = nul_at(raw, "decision")
        if nul is not None:
            return f"the {nul} holds a NUL character (\\0), which no record can carry"
        gate = raw.get("gate")
        if not isinstance(gate, str) or not gate:
            return f"no gate {gate!r}: a decision names its gate (the approval step's id)"
        kind = raw.get("decision")
        if not isinstance(kind, str) or kind not in _DECISIONS:
            return f"decision must be approve, reject or modify, not {kind!r}"
        changes = raw.get("set")
        if kind == DecisionKind.MODIFY and (not isinstance(changes, Mapping) or not changes):
            return "a modify decision sets at least one input (set: {name: value})"
        proof = raw.get("proof")
        return cls(
            gate=gate,
            decision=DecisionKind(kind),
            by=_text(raw, "by") or "",
            comment=_text(raw, "comment") or "",
            set=dict(changes) if kind == DecisionKind.MODIFY and changes else None,
            proof=dict(proof) if isinstance(proof, Mapping) else None,
        )

    def proven(self, principal: str, via: Mapping[str, Any] | None = None) -> Decision:
        """The decision as the run took it: by the signature's principal."""
        return replace(self, by=principal, verified=True, via=via)

    def to_json(self) -> JsonObject:
        found: JsonObject = {"gate": self.gate, "decision": str(self.decision)}
        if self.by:
            found["by"] = self.by
        found["comment"] = self.comment
        if self.set is not None:
            found["set"] = dict(self.set)
        if self.proof is not None:
            found["proof"] = dict(self.proof)
        return found


@dataclass(frozen=True)
class ControlRequest:
    """pause, resume, cancel a run; set a fan-out's concurrency, or skip its items."""

    action: ControlAction
    by: str = ""
    comment: str = ""
    step: str | None = None  # concurrency, skip: the fan-out step
    concurrency: Any = None  # concurrency: items at once (checked by the run)
    items: list[str] = field(default_factory=list)  # skip: the items' names
    proof: Mapping[str, Any] | None = None
    verified: bool = False
    via: Mapping[str, Any] | None = None
    # What came as `items` or `concurrency`, when it is not what those take (refused
    # by the run, with the reason, once it knows the step).
    malformed: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> ControlRequest | str:
        if not isinstance(raw, Mapping):
            return "a control request is a mapping with action and by"
        nul = nul_at(raw, "request")
        if nul is not None:
            return f"the {nul} holds a NUL character (\\0), which no record can carry"
        action = raw.get("action")
        if not isinstance(action, str) or action not in _ACTIONS:
            names = ", ".join(a.value for a in ControlAction)
            return f"unknown action {action!r}; use one of {names}"
        items = raw.get("items")
        listed = isinstance(items, list) and all(isinstance(i, str) for i in items)
        proof = raw.get("proof")
        step = raw.get("step")
        return cls(
            action=ControlAction(action),
            by=_text(raw, "by") or "",
            comment=_text(raw, "comment") or "",
            step=step if isinstance(step, str) else (None if step is None else str(step)),
            concurrency=raw.get("concurrency"),
            items=list(items) if listed and isinstance(items, list) else [],
            proof=dict(proof) if isinstance(proof, Mapping) else None,
            malformed=None if items is None or listed else "items",
        )

    def proven(self, principal: str, via: Mapping[str, Any] | None = None) -> ControlRequest:
        return replace(self, by=principal, verified=True, via=via)

    def to_json(self) -> JsonObject:
        found: JsonObject = {"action": str(self.action)}
        if self.by:
            found["by"] = self.by
        found["comment"] = self.comment
        if self.step is not None:
            found["step"] = self.step
        if self.action == ControlAction.CONCURRENCY:
            found["concurrency"] = self.concurrency
        if self.action == ControlAction.SKIP:
            found["items"] = list(self.items)
        if self.proof is not None:
            found["proof"] = dict(self.proof)
        return found


@dataclass(frozen=True)
class Basis:
    """The run's answer to the `basis` query: what a person's signature binds (its ids,
    its plan's hash, the hash of its inputs now, each gate's round), its trust mode,
    and the declarations `modify --set NAME=VALUE` converts values by. Read from the
    run itself, never from a published picture that may lag behind it."""

    run_id: str
    temporal_run_id: str
    plan_hash: str
    inputs_hash: str
    mode: str  # claimed | signed
    rounds: Mapping[str, int] = field(default_factory=dict)  # gate -> round
    declarations: Mapping[str, Declaration] = field(default_factory=dict)

    @property
    def signed(self) -> bool:
        return self.mode == "signed"

    def ids(self) -> dict[str, str]:
        """The claim's fields that name the run (runner/trust/claims.py)."""
        return {
            "run_id": self.run_id,
            "temporal_run_id": self.temporal_run_id,
            "plan_hash": self.plan_hash,
            "inputs_hash_now": self.inputs_hash,
        }

    @classmethod
    def parse(cls, raw: Any) -> Basis | None:
        if not isinstance(raw, Mapping):
            return None
        rounds = raw.get("rounds")
        declarations = raw.get("declarations")
        return cls(
            run_id=str(raw.get("run_id") or ""),
            temporal_run_id=str(raw.get("temporal_run_id") or ""),
            plan_hash=str(raw.get("plan_hash") or ""),
            inputs_hash=str(raw.get("inputs_hash") or ""),
            mode=str(raw.get("mode") or "claimed"),
            rounds=dict(rounds) if isinstance(rounds, Mapping) else {},
            declarations=dict(declarations) if isinstance(declarations, Mapping) else {},
        )

    def to_json(self) -> JsonObject:
        return {
            "run_id": self.run_id,
            "temporal_run_id": self.temporal_run_id,
            "plan_hash": self.plan_hash,
            "inputs_hash": self.inputs_hash,
            "mode": self.mode,
            "rounds": dict(self.rounds),
            "declarations": dict(self.declarations),
        }
