"""A run as people see it: RunView, built once by the engine, read by every client.

The run answers the `state` query with `RunView.to_json()` (what `status --format
json` prints, docs/running.md), and publishes `RunView.summary()` in its memo (the
picture `status` and `pending` show when no worker answers). A client rebuilds a
RunView from either with `RunView.from_json` or `RunView.from_picture`, so the CLI,
the web service and notifications read attributes, not string keys.

The records inside (approvals, decisions, a wave's counts, a failed item) are
TypedDicts: they are JSON as it travels, checked by mypy where code reads them.
Parsing is tolerant: a field an older run did not publish takes its default, so a
run started by an earlier version still reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, cast

from runner.contract.messages import JsonObject
from runner.contract.vocab import GateStatus, LockStatus, RunStatus, StepStatus

# An error in the picture: enough to recognise it; `status` with a worker has all.
PICTURE_ERROR_TEXT = 300
PICTURE_FAILED_ITEMS = 5
PICTURE_DECISIONS = 10
PICTURE_CONTROLS = 5
# A wave's facts in the picture.
PICTURE_WAVE_KEYS = (
    "name",
    "status",
    "size",
    "succeeded",
    "failed",
    "skipped",
    "gate",
    "budget",
    "batch",
    "running",
    "until",
    "started_at",
    "finished_at",
)


class ErrorJson(TypedDict):
    type: str
    message: str
    step: NotRequired[str | None]  # the run's error: the step that failed
    source: NotRequired[str | None]  # where in the runbook
    worker: NotRequired[str]  # pid@host of the worker it came from


class AttemptFailure(TypedDict, total=False):
    """An attempt of a step that failed before the last one, and why it was retried."""

    attempt: int
    type: str
    message: str
    started_at: str | None
    failed_at: str | None
    worker: str  # pid@host of the worker that ran it


class ApprovalJson(TypedDict):
    by: str
    verified: bool
    at: str | None
    comment: str
    # How the principal was proven when not by their own key: a service's vouch
    # ({"service": "web", "issuer", "subject", "auth_time"}) or {"certificate": key id}.
    via: NotRequired[dict[str, Any]]


# What a modify changed of one input ("from" is a keyword: the functional form).
InputChange = TypedDict("InputChange", {"from": Any, "to": Any})


class DecisionJson(TypedDict):
    decision: str
    by: str
    verified: bool
    at: str | None
    comment: str
    changes: NotRequired[dict[str, InputChange]]
    via: NotRequired[dict[str, Any]]


class ModificationJson(TypedDict):
    by: str
    verified: bool
    at: str | None
    comment: str
    changes: dict[str, InputChange]
    via: NotRequired[dict[str, Any]]


class RefusedJson(TypedDict):
    at: str | None
    decision: Any  # as it was sent: a refused signal may not read as a decision
    reason: str


class ControlJson(TypedDict, total=False):
    action: str
    by: str
    verified: bool
    at: str | None
    comment: str
    step: str
    concurrency: int
    items: list[str]
    via: dict[str, Any]


class WaveJson(TypedDict):
    """One wave of a fan-out: its place, its budget, its counts so far."""

    name: str
    gate: str | None
    size: int
    first: int
    budget: int | None
    status: str  # pending pausing waiting paused running succeeded failed cancelled not_started
    succeeded: int
    failed: int
    skipped: int
    running: int
    batch: str | None  # the running batch's workflow id
    started_at: str | None
    finished_at: str | None
    until: NotRequired[str | None]  # pausing: until when


class FailedItemJson(TypedDict):
    item: str
    error: Any
    at: NotRequired[str | None]


class FailureJson(TypedDict):
    """A failed item as a batch reports it, with its place in the fan-out's list."""

    index: int
    item: str
    error: Any
    at: NotRequired[str | None]


class LockHolderJson(TypedDict, total=False):
    run: str | None
    step: str | None
    since: str | None


def _error_summary(error: ErrorJson | None) -> ErrorJson | None:
    if not error:
        return None
    return {
        "type": str(error.get("type")),
        "message": str(error.get("message") or "")[:PICTURE_ERROR_TEXT],
    }


def error_text(error: Mapping[str, Any] | None) -> str:
    """`Type: message`, as people read an error; "" for none."""
    if not error:
        return ""
    text = f"{error.get('type')}: {error.get('message')}"
    worker = error.get("worker")
    return f"{text} (on worker {worker})" if worker else text


@dataclass
class FanoutView:
    total: int = 0
    concurrency: int | None = None
    waves: list[WaveJson] = field(default_factory=list)
    failed_items: list[FailedItemJson] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FanoutView:
        return cls(
            total=int(raw.get("total") or 0),
            concurrency=raw.get("concurrency"),
            waves=list(raw.get("waves") or []),
            failed_items=list(raw.get("failed_items") or []),
        )

    def to_json(self) -> JsonObject:
        return {
            "total": self.total,
            "concurrency": self.concurrency,
            "waves": [dict(w) for w in self.waves],
            "failed_items": list(self.failed_items),
        }

    def summary(self) -> JsonObject:
        return {
            "total": self.total,
            "concurrency": self.concurrency,
            "waves": [{k: w.get(k) for k in PICTURE_WAVE_KEYS} for w in self.waves],
            "failed_items": [
                {"item": f["item"], "error": f["error"], "at": f.get("at")}
                for f in self.failed_items[-PICTURE_FAILED_ITEMS:]
            ],
        }


@dataclass
class StepView:
    status: str = StepStatus.PENDING
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: ErrorJson | None = None
    reason: str | None = None  # why it was skipped or cancelled
    compensation: JsonObject | None = None
    failed_attempts: list[AttemptFailure] = field(default_factory=list)
    fanout: FanoutView | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StepView:
        fanout = raw.get("fanout")
        return cls(
            status=str(raw.get("status") or StepStatus.PENDING),
            attempts=int(raw.get("attempts") or 0),
            started_at=raw.get("started_at"),
            finished_at=raw.get("finished_at"),
            output=raw.get("output"),
            error=raw.get("error") or None,
            reason=raw.get("reason"),
            compensation=raw.get("compensation"),
            failed_attempts=list(raw.get("failed_attempts") or []),
            fanout=FanoutView.from_json(fanout) if isinstance(fanout, Mapping) else None,
        )

    @property
    def ended(self) -> bool:
        return self.status in (
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            StepStatus.SKIPPED,
            StepStatus.CANCELLED,
        )

    def to_json(self) -> JsonObject:
        found: JsonObject = {
            "status": self.status,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "output": self.output,
            "error": self.error,
            "reason": self.reason,
            "compensation": self.compensation,
            "failed_attempts": self.failed_attempts,
        }
        if self.fanout is not None:
            found["fanout"] = self.fanout.to_json()
        return found

    def summary(self) -> JsonObject:
        found: JsonObject = {"status": self.status, "attempts": self.attempts}
        if self.started_at:
            found["started_at"] = self.started_at
        if self.finished_at:
            found["finished_at"] = self.finished_at
        error = _error_summary(self.error)
        if error:
            found["error"] = error
        if self.reason and self.status in (StepStatus.SKIPPED, StepStatus.CANCELLED):
            found["reason"] = self.reason
        if self.fanout is not None:
            found["fanout"] = self.fanout.summary()
        return found


@dataclass
class GateView:
    gate: str
    step: str = ""
    status: str = GateStatus.WAITING
    message: str = ""
    approvers: list[str] = field(default_factory=list)
    min_approvals: int = 1
    # In the picture from this version on: None when read from an earlier one.
    allow_self_approval: bool | None = None
    modifiable: list[str] = field(default_factory=list)
    on_timeout: str | None = None
    approvals: list[ApprovalJson] = field(default_factory=list)
    decisions: list[DecisionJson] = field(default_factory=list)  # the picture: the latest
    modifications: list[ModificationJson] = field(default_factory=list)
    round: int = 0  # each modify opens a new round of approval
    refused: list[RefusedJson] = field(default_factory=list)
    waiting_since: str | None = None
    deadline: str | None = None

    @property
    def waiting(self) -> bool:
        return self.status == GateStatus.WAITING

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> GateView:
        modifications = list(raw.get("modifications") or [])
        return cls(
            gate=str(raw.get("gate") or ""),
            step=str(raw.get("step") or ""),
            status=str(raw.get("status") or GateStatus.WAITING),
            message=str(raw.get("message") or ""),
            approvers=[str(a) for a in raw.get("approvers") or []],
            min_approvals=int(raw.get("min_approvals") or 1),
            allow_self_approval=raw.get("allow_self_approval"),
            modifiable=[str(m) for m in raw.get("modifiable") or []],
            on_timeout=raw.get("on_timeout"),
            approvals=list(raw.get("approvals") or []),
            decisions=list(raw.get("decisions") or []),
            modifications=modifications,
            round=int(raw.get("round", len(modifications)) or 0),
            refused=list(raw.get("refused") or []),
            waiting_since=raw.get("waiting_since"),
            deadline=raw.get("deadline"),
        )

    def to_json(self) -> JsonObject:
        return {
            "gate": self.gate,
            "step": self.step,
            "status": self.status,
            "message": self.message,
            "approvers": self.approvers,
            "min_approvals": self.min_approvals,
            "allow_self_approval": self.allow_self_approval,
            "modifiable": self.modifiable,
            "on_timeout": self.on_timeout,
            "approvals": self.approvals,
            "decisions": self.decisions,
            "modifications": self.modifications,
            "round": self.round,
            "refused": self.refused,
            "waiting_since": self.waiting_since,
            "deadline": self.deadline,
        }

    def summary(self) -> JsonObject:
        """The gate as `pending` and `status` show it without a worker: the latest
        decisions only."""
        return {
            "gate": self.gate,
            "step": self.step,
            "status": self.status,
            "message": self.message,
            "approvers": self.approvers,
            "min_approvals": self.min_approvals,
            # whether the one who started the run may approve it: a prompt asks only those
            # who may decide
            "allow_self_approval": self.allow_self_approval,
            "approvals": self.approvals,
            "modifiable": self.modifiable,
            "round": self.round,
            "waiting_since": self.waiting_since,
            "deadline": self.deadline,
            "decisions": self.decisions[-PICTURE_DECISIONS:],
            "modifications": self.modifications[-PICTURE_DECISIONS:],
        }


@dataclass
class LockView:
    """A lock key the run asked for, for itself (`step` None) or for one step."""

    key: str
    step: str | None = None
    status: str = LockStatus.REQUESTING
    since: str | None = None  # when asked; once held, when granted
    holder: LockHolderJson | None = None  # whom it waits behind, as the lock said
    position: int | None = None  # its place in the line

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LockView:
        holder = raw.get("holder")
        return cls(
            key=str(raw.get("key") or ""),
            step=raw.get("step"),
            status=str(raw.get("status") or LockStatus.REQUESTING),
            since=raw.get("since"),
            holder=cast(LockHolderJson, holder) if isinstance(holder, dict) else None,
            position=raw.get("position"),
        )

    def to_json(self) -> JsonObject:
        return {
            "key": self.key,
            "step": self.step,
            "status": self.status,
            "since": self.since,
            "holder": self.holder,
            "position": self.position,
        }


@dataclass
class Identity:
    """How the run knows its people: `claimed` or `signed` (docs/trust.md)."""

    mode: str = "claimed"
    trust_sha256: str | None = None
    started_by_verified: bool = False

    @property
    def signed(self) -> bool:
        return self.mode == "signed"

    @classmethod
    def from_json(cls, raw: Any) -> Identity | None:
        if not isinstance(raw, Mapping):
            return None
        return cls(
            mode=str(raw.get("mode") or "claimed"),
            trust_sha256=raw.get("trust_sha256"),
            started_by_verified=bool(raw.get("started_by_verified")),
        )

    def to_json(self) -> JsonObject:
        return {
            "mode": self.mode,
            "trust_sha256": self.trust_sha256,
            "started_by_verified": self.started_by_verified,
        }


@dataclass
class RunView:
    """One run: what `status` shows. `published_at` is set when it was read from the
    run's picture (no worker answered), with `published_because` saying why."""

    run_id: str  # the workflow id: what every command takes as RUN
    temporal_run_id: str | None = None  # Temporal's id of this execution
    name: str | None = None
    kind: str | None = None
    status: str = RunStatus.RUNNING
    started_by: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    inputs: JsonObject | None = None  # None in a picture
    identity: Identity | None = None
    plan_hash: str | None = None
    inputs_hash: str | None = None
    steps: dict[str, StepView] = field(default_factory=dict)
    gates: list[GateView] = field(default_factory=list)
    paused: bool = False
    controls: list[ControlJson] = field(default_factory=list)
    locks: list[LockView] = field(default_factory=list)
    redrive_of: str | None = None
    outputs: Any = None
    error: ErrorJson | None = None
    store_backlog: int = 0  # events not yet in the run store
    published_at: str | None = None
    published_because: str | None = None
    # Where the runbook came from (git remote, commit, path, blob, clean, branches,
    # signature), as its signed start says; None when it said nothing.
    provenance: JsonObject | None = None
    # The worker's policy as it applies to the run ({"sha256", "rules", "approve",
    # "operate", "proposal"}), None without one (docs/governance.md).
    policy: JsonObject | None = None

    @property
    def running(self) -> bool:
        return self.status == RunStatus.RUNNING

    @property
    def published(self) -> bool:
        return self.published_at is not None or self.published_because is not None

    def gate(self, name: str) -> GateView | None:
        return next((g for g in self.gates if g.gate == name), None)

    def waiting_gates(self) -> list[GateView]:
        return [g for g in self.gates if g.waiting]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunView:
        """From the `state` query's answer (or the final memo). Runs started by earlier
        versions called Temporal's run id `run_id`: RUN is the workflow id."""
        run_id, temporal = raw.get("run_id"), raw.get("temporal_run_id")
        if "temporal_run_id" not in raw and "workflow_id" in raw:
            run_id, temporal = raw.get("workflow_id"), raw.get("run_id")
        return cls(
            run_id=str(run_id or raw.get("workflow_id") or ""),
            temporal_run_id=temporal,
            name=raw.get("name"),
            kind=raw.get("kind"),
            status=str(raw.get("status") or RunStatus.RUNNING),
            started_by=raw.get("started_by"),
            started_at=raw.get("started_at"),
            finished_at=raw.get("finished_at"),
            inputs=raw.get("inputs"),
            identity=Identity.from_json(raw.get("identity")),
            plan_hash=raw.get("plan_hash"),
            inputs_hash=raw.get("inputs_hash"),
            steps=_in_order(raw),
            gates=[GateView.from_json(g) for g in raw.get("gates") or [] if isinstance(g, Mapping)],
            paused=bool(raw.get("paused")),
            controls=list(raw.get("controls") or []),
            locks=[LockView.from_json(h) for h in raw.get("locks") or [] if isinstance(h, Mapping)],
            redrive_of=raw.get("redrive_of"),
            outputs=raw.get("outputs"),
            error=raw.get("error") or None,
            store_backlog=int(raw.get("store_backlog") or 0),
            published_at=raw.get("published_at"),
            published_because=raw.get("published_because"),
            provenance=raw.get("provenance") if isinstance(raw.get("provenance"), dict) else None,
            policy=raw.get("policy") if isinstance(raw.get("policy"), dict) else None,
        )

    @classmethod
    def from_picture(
        cls,
        picture: Mapping[str, Any],
        *,
        run_id: str,
        temporal_run_id: str | None,
        name: str | None,
        kind: str | None,
        why: str,
        closed_status: str | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
    ) -> RunView:
        """From what the run last published (memo `live`), and what visibility knows of
        it: its ids, name and kind, and its status once it has closed."""
        view = cls.from_json(picture)
        view.run_id, view.temporal_run_id = run_id, temporal_run_id
        view.name, view.kind = name, kind
        if closed_status is not None:
            view.status = closed_status
        view.started_at = view.started_at or started_at
        view.finished_at = view.finished_at or finished_at
        view.inputs = None
        for step in view.steps.values():
            step.output = None
            step.compensation = None
        view.published_because = why
        return view

    def to_json(self) -> JsonObject:
        """The status JSON (docs/running.md)."""
        found: JsonObject = {
            "run_id": self.run_id,
            "workflow_id": self.run_id,
            "temporal_run_id": self.temporal_run_id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "inputs": self.inputs,
            "identity": self.identity.to_json() if self.identity is not None else None,
            "plan_hash": self.plan_hash,
            "inputs_hash": self.inputs_hash,
            "steps": {sid: step.to_json() for sid, step in self.steps.items()},
            "order": list(self.steps),
            "gates": [g.to_json() for g in self.gates],
            "paused": self.paused,
            "controls": self.controls,
            "locks": [hold.to_json() for hold in self.locks],
            "redrive_of": self.redrive_of,
            "outputs": self.outputs,
            "error": self.error,
            "store_backlog": self.store_backlog,
        }
        if self.published:
            found["published_at"] = self.published_at
            found["published_because"] = self.published_because
        # Only when present: the status of runs without them reads as it did.
        if self.provenance is not None:
            found["provenance"] = self.provenance
        if self.policy is not None:
            found["policy"] = self.policy
        return found

    def summary(self, published_at: str | None) -> JsonObject:
        """The picture the run publishes in its memo: small, and enough for `status`,
        `pending` and a signer to know the run's trust mode without a worker."""
        picture: JsonObject = {
            "status": self.status,
            "paused": self.paused,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "published_at": published_at,
            "steps": {sid: step.summary() for sid, step in self.steps.items()},
            "order": list(self.steps),
            "gates": [g.summary() for g in self.gates],
            "controls": self.controls[-PICTURE_CONTROLS:],
            "error": self.error,
        }
        if self.locks:
            picture["locks"] = [hold.to_json() for hold in self.locks]
        if self.identity is not None:
            picture["identity"] = {
                "mode": self.identity.mode,
                "started_by_verified": self.identity.started_by_verified,
            }
        return picture


def _in_order(raw: Mapping[str, Any]) -> dict[str, StepView]:
    """The steps in the plan's order. JSON through Temporal has its keys sorted, so the
    run sends the order beside them (`order`); runs before it come sorted by id."""
    steps = {
        str(sid): StepView.from_json(step)
        for sid, step in (raw.get("steps") or {}).items()
        if isinstance(step, Mapping)
    }
    order = raw.get("order")
    if not isinstance(order, list):
        return steps
    ordered = {str(sid): steps[str(sid)] for sid in order if str(sid) in steps}
    return {**ordered, **steps}
