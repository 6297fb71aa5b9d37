"""The wire contract: what crosses the Temporal boundary between clients, runs and workers.

Names of the workflows, activities, Updates, signals, queries and search
attributes, and the plain dataclasses that travel as their arguments. They stay
JSON-compatible so that histories remain readable, and so that a run started by
one version of qlrf-run replays in the next: add fields with defaults, never
rename or remove one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TASK_QUEUE = "ql-rf-orchestrator"
WORKFLOW_TYPE = "qlrf.Runbook"
BATCH_WORKFLOW_TYPE = "qlrf.Batch"  # a child workflow that runs one batch of a fan-out
LOCK_WORKFLOW_TYPE = "qlrf.Lock"  # one per lock key: the mutex (runner/engine/lock.py)
LOCK_ID_PREFIX = "qlrf-lock:"  # + the key: the lock workflow's id

# Handlers of the run.
STATE_QUERY = "state"
DECLARATIONS_QUERY = "declarations"
DECIDE = "decide"  # an Update, and a signal of the same name for clients that only signal
CONTROL = "control"  # an Update: pause, resume, concurrency, skip
LOCK_NEWS = "lock"  # a signal from a lock to a run: queued behind a holder, or granted
# Handlers of a lock.
LOCK_ACQUIRE = "acquire"  # a signal: queue this holder
LOCK_RELEASE = "release"  # a signal: the holder is done, or the waiter gives up
# Handlers of a batch.
PROGRESS_QUERY = "progress"
BATCH_CONTROL_SIGNAL = "control"

# Plumbing activities (every step type's own activity is named in its definition).
GATE_NOTIFY_ACTIVITY = "gate_notify"
STORE_ACTIVITY = "store_record"  # writes a batch of a run's events to the run store
LOCK_REQUEST_ACTIVITY = "lock_request"  # signal-with-start of a lock's workflow
LOCK_WATCH_ACTIVITY = "lock_watch"  # returns when the lock's holder has closed
# `foreach: {from_file: ...}`: read an inventory file on the worker, then page it.
INVENTORY_OPEN_ACTIVITY = "inventory_open"
INVENTORY_PAGE_ACTIVITY = "inventory_page"
# Signed mode: whom the worker trusts, read as the run's first act (runner/steps/trust.py).
TRUST_SNAPSHOT_ACTIVITY = "trust_snapshot"
# What a start must prove beyond its signature: spent once, a schedule's own run, what a
# redrive keeps (runner/steps/admission.py).
START_ADMISSION_ACTIVITY = "start_admission"

NAME_ATTRIBUTE = "QlrfName"
KIND_ATTRIBUTE = "QlrfKind"
WAITING_ATTRIBUTE = "QlrfWaiting"  # the ids of a run's waiting gates
# Memo keys a run publishes, read by `status` and `pending` when no worker answers.
LIVE_MEMO = "live"  # a small picture of the run while it runs
FINAL_MEMO = "state"  # the full state, once it has closed
LOCK_MEMO = "lock"  # a lock's holder and waiters, read by `qlrf-run locks`
# What a lock's acquire binds, in this order, with the lock's key (runner/trust/internal.py).
ACQUIRE_FIELDS = ("token", "run", "temporal_run_id", "step")
# A lock key is at most this long, printable, and makes the lock workflow's id.
LOCK_KEY_LIMIT = 200
# name -> Temporal type; every server qlrf-run uses must have them registered.
SEARCH_ATTRIBUTES = {
    NAME_ATTRIBUTE: "Keyword",
    KIND_ATTRIBUTE: "Keyword",
    WAITING_ATTRIBUTE: "KeywordList",
}

# A run's steps and fan-out items at once when the runbook sets no `concurrency`:
# safely under Temporal's limit of 2,000 pending activities per workflow.
DEFAULT_CONCURRENCY = 500
# Temporal refuses payloads over 2 MiB, and a refused workflow task hangs the run:
# what the run sends or keeps stays below these.
PAYLOAD_LIMIT = 1_500_000
MEMO_LIMIT = 1_000_000


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


@dataclass
class StepRequest:
    """The argument of every step type's activity."""

    run_id: str  # the run's workflow id
    step: str
    params: dict[str, Any]  # rendered `with`; secrets still as references
    script_env: dict[str, str] = field(default_factory=dict)  # a script's QLRF_ARG_n values
    # Where the worker may resolve secret references: positions in `params`, and
    # names in `script_env`. None only in requests made before positions existed.
    secret_params: list[list[str | int]] | None = None
    secret_env: list[str] | None = None
    item: str | None = None  # the fan-out item this request is for ($QLRF_ITEM)


@dataclass
class BatchItem:
    index: int  # the item's place in the fan-out's list
    key: str  # its name (runner.plan.waves.item_key)
    params: dict[str, Any]  # the step's `with`, rendered for this item
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
    retry: dict[str, Any]  # the plan's RetryPolicy as JSON
    timeouts: dict[str, Any]  # the plan's Timeouts as JSON
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


@dataclass
class PagedSource:
    """How a batch of a fan-out from a file gets and renders its items."""

    inventory: dict[str, Any]  # {path, format, sha256, redrive_of, step}: inventory_page's
    start: int  # the page: items [start, end) of the inventory
    end: int
    named: bool  # items are named by their `name` (waves.item_key)
    loop_var: str
    with_: dict[str, Any]  # the step's `with`, unrendered
    script: str | None  # the `with` key holding a script (its templates become env)
    secrets: list[Any]  # positions in `with` that name a secret
    context: dict[str, Any]  # what templates see, but the loop variable and secrets


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


@dataclass
class LockInput:
    """The input of qlrf.Lock: its key, and what it carries over a continue-as-new.
    The lock reads it as plain JSON and takes its key from its workflow id."""

    key: str
    holder: dict[str, Any] | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)
