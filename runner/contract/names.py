"""The names that cross the Temporal boundary: workflows, activities, Updates, signals,
queries, search attributes and memo keys, and the limits every side keeps.

One place for each name: the activity decorators, the step definitions' registry
(definitions/steps/*.yaml say `activity: NAME`, checked against STEP_ACTIVITIES) and
the engine all read them from here. Never rename one: runs started by one version
of qlrf-run replay in the next.
"""

from __future__ import annotations

TASK_QUEUE = "ql-rf-orchestrator"
WORKFLOW_TYPE = "qlrf.Runbook"
BATCH_WORKFLOW_TYPE = "qlrf.Batch"  # a child workflow that runs one batch of a fan-out
LOCK_WORKFLOW_TYPE = "qlrf.Lock"  # one per lock key: the mutex (runner/engine/lock.py)
LOCK_ID_PREFIX = "qlrf-lock:"  # + the key: the lock workflow's id

# Handlers of the run.
STATE_QUERY = "state"
DECLARATIONS_QUERY = "declarations"
# What a signer binds, from the run itself: ids, plan and inputs hashes, each gate's
# round, the trust mode and the input declarations (messages.Basis).
BASIS_QUERY = "basis"
DECIDE = "decide"  # an Update, and a signal of the same name for clients that only signal
CONTROL = "control"  # an Update: pause, resume, concurrency, skip
LOCK_NEWS = "lock"  # a signal from a lock to a run: queued behind a holder, or granted
# Handlers of a lock.
LOCK_ACQUIRE = "acquire"  # a signal: queue this holder
LOCK_RELEASE = "release"  # a signal: the holder is done, or the waiter gives up
# Handlers of a batch.
PROGRESS_QUERY = "progress"
BATCH_CONTROL_SIGNAL = "control"

# The step types' activities (each definition's `activity:` names one of these).
SHELL_ACTIVITY = "shell"
HTTP_ACTIVITY = "http"
SQL_ACTIVITY = "sql"
SSH_ACTIVITY = "ssh"
NOTIFY_ACTIVITY = "notify"
EVIDENCE_ACTIVITY = "evidence"
STEP_ACTIVITIES = (
    SHELL_ACTIVITY,
    HTTP_ACTIVITY,
    SQL_ACTIVITY,
    SSH_ACTIVITY,
    NOTIFY_ACTIVITY,
    EVIDENCE_ACTIVITY,
)
# Plumbing activities.
GATE_NOTIFY_ACTIVITY = "gate_notify"
# One notification to one configured channel (runner/notify/deliver.py).
NOTIFY_DELIVER_ACTIVITY = "notify_deliver"
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
