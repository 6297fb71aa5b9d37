"""The plain dataclasses that travel as the arguments of qlrf-run's workflows and
activities. They stay JSON-compatible so that histories remain readable, and so that
a run started by one version of qlrf-run replays in the next: add fields with
defaults, never rename or remove one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from runner.contract.messages import JsonObject
from runner.contract.names import LOCK_ID_PREFIX
from runner.contract.state import AttemptFailure, FailureJson


def payload_size(value: Any) -> int:
    """The size of `value` as JSON, close to what Temporal's converter makes of it."""
    return len(json.dumps(value, default=str))


@dataclass
class RunInput:
    """The input of qlrf.Runbook."""

    # Every field is typed Any so that whatever JSON a client of the plain Temporal API
    # sends decodes, and the run refuses a malformed input itself (engine/admission.py)
    # instead of failing its first workflow task for ever.
    plan: Any  # Plan.to_dict()
    inputs: Any  # {name: value}
    started_by: Any  # str
    definition_sha256: Any = ""
    # Members of the groups that gates name, resolved when the run starts.
    groups: Any = field(default_factory=dict)  # {group: [member]}
    # The run store: whether to record, and the definition as applied (for evidence).
    record: Any = False
    definition_file: Any = ""
    definition_text: Any = ""
    # A redrive (`qlrf-run redrive`): {"of": RUN, "from": STEP, "reapprove": bool}. What
    # it keeps is read by the worker (runner/steps/admission.py), never taken from here
    # (runs started before that carried {"of", "steps", "items"} as decided by the client).
    # None for a fresh run.
    redrive: Any = None
    # Signed mode (docs/trust.md): the starter's {"signature", "nonce", "not_after"}
    # over the start's claim. None from a client that does not sign.
    proof: Any = None
    # Where the runbook came from (runner/app/provenance.py): git remote, commit, path,
    # blob, clean, branches, signature; part of the signed start claim. None from a
    # client that does not say.
    provenance: Any = None


@dataclass
class StepRequest:
    """The argument of every step type's activity."""

    run_id: str  # the run's workflow id
    step: str
    params: JsonObject  # rendered `with`; secrets still as references
    script_env: dict[str, str] = field(default_factory=dict)  # a script's QLRF_ARG_n values
    # Where the worker may resolve secret references: positions in `params`, and
    # names in `script_env`. None only in requests made before positions existed.
    secret_params: list[list[str | int]] | None = None
    secret_env: list[str] | None = None
    item: str | None = None  # the fan-out item this request is for ($QLRF_ITEM)
    # Whom the run trusts (trust_mark): a worker that trusts otherwise refuses the step,
    # so that two workers of one queue set up differently cannot both serve a run.
    trust: str | None = None


@dataclass
class BatchItem:
    index: int  # the item's place in the fan-out's list
    key: str  # its name (runner.plan.waves.item_key)
    params: JsonObject  # the step's `with`, rendered for this item
    script_env: dict[str, str] = field(default_factory=dict)
    secret_params: list[list[str | int]] = field(default_factory=list)
    secret_env: list[str] = field(default_factory=list)


@dataclass
class BatchInput:
    """One batch of a fan-out's wave, run by the child workflow qlrf.Batch."""

    run_id: str  # the run's workflow id, as activities see it
    step: str
    name: str
    wave: str
    activity: str
    retry: JsonObject  # the plan's RetryPolicy as JSON
    timeouts: JsonObject  # the plan's Timeouts as JSON
    items: list[BatchItem]
    concurrency: int
    budget: int | None  # failures this batch may still have before the wave stops
    keep_outputs: bool  # return every item's output (small fan-outs only)
    paused: bool = False
    skip: list[int] = field(default_factory=list)  # indexes an operator left out
    store_run_id: str = ""  # the run store's run id; empty when the store is off
    # A fan-out from a file: no `items`; the batch reads its page on the worker and
    # renders it itself (PagedSource).
    source: PagedSource | None = None
    skip_names: list[str] = field(default_factory=list)  # items an operator left out
    # The run authenticates its control signals (runner/trust/internal.py).
    authenticated: bool = False
    trust: str | None = None  # whom the run trusts: StepRequest.trust


def trust_mark(mode: str, sha256: str | None) -> str:
    """A worker's trust in a word: `claimed`, or `signed:` and its trust file's digest."""
    return f"signed:{sha256}" if mode == "signed" else "claimed"


class StepResult(TypedDict):
    """What every step type's activity returns: its output (secrets masked), and the
    attempt that made it."""

    output: Any
    attempt: int
    started_at: str | None
    failures: list[AttemptFailure]  # the attempts before this one, and why they failed
    worker: NotRequired[str]  # the worker that ran this attempt: pid@host


class BatchResult(TypedDict):
    """What a batch (qlrf.Batch) returns to its run."""

    succeeded: int
    failed: int
    skipped: list[int]  # indexes left out by an operator
    not_started: list[int]  # indexes never started: the wave went over its budget
    exceeded: bool  # over the failure budget
    failures: list[FailureJson]
    # index -> output, for a small fan-out (the keys are text once through JSON)
    outputs: dict[Any, Any]
    page: NotRequired[dict[Any, Any]]  # a small fan-out from a file: index -> item


@dataclass
class PagedSource:
    """How a batch of a fan-out from a file gets and renders its items."""

    inventory: JsonObject  # {path, format, sha256, redrive_of, step}: inventory_page's
    start: int  # the page: items [start, end) of the inventory
    end: int
    named: bool  # items are named by their `name` (waves.item_key)
    loop_var: str
    with_: JsonObject  # the step's `with`, unrendered
    script: str | None  # the `with` key holding a script (its templates become env)
    secrets: list[Any]  # positions in `with` that name a secret
    context: JsonObject  # what templates see, but the loop variable and secrets


def lock_workflow_id(key: str) -> str:
    return f"{LOCK_ID_PREFIX}{key}"


def lock_wait_text(key: Any, holder: Any) -> str:
    """`waiting for lock db:prod-1 (held by run R step S since T)`: how a wait reads in
    the run's state, in `status`, `pending` and progress, from a lock's holder as the
    run's state carries it ({"run", "step", "since"}, or None before the lock said)."""
    text = f"waiting for lock {key}"
    if isinstance(holder, dict) and holder.get("run"):
        step = f" step {holder['step']}" if holder.get("step") else ""
        text += f" (held by run {holder['run']}{step} since {holder.get('since')})"
    return text


class LockRequest(TypedDict, total=False):
    """A holder or waiter as a lock keeps it. Its token releases it: never shown."""

    token: str
    run: str  # the run's workflow id
    temporal_run_id: str
    step: str | None  # the step it holds the key for; None: the whole run
    queued_at: str | None
    since: str | None  # when it was granted the key


class LockHolder(TypedDict, total=False):
    """What others may see of a holder or waiter (`qlrf-run locks`, a lock's news)."""

    run: str | None
    step: str | None
    since: str | None
    queued_at: str | None


class LockNews(TypedDict, total=False):
    """A lock's word to a run: queued behind a holder (`waiting`), or `granted`."""

    key: str
    token: str
    status: str
    holder: LockHolder
    position: int
    mac: str  # runner/trust/internal.py


class LockPicture(TypedDict):
    """A lock's memo: its holder and first waiters, in order."""

    key: str
    holder: LockHolder | None
    waiters: list[LockHolder]
    waiting: int


@dataclass
class LockInput:
    """The input of qlrf.Lock: its key, and what it carries over a continue-as-new.
    The lock reads it as plain JSON and takes its key from its workflow id."""

    key: str
    holder: LockRequest | None = None
    queue: list[LockRequest] = field(default_factory=list)
