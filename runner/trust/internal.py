"""The key qlrf-run's own workflows authenticate their messages with.

A lock's acquire, grant and release, a run's control of its fan-out batches and its
start of a child run travel as signals and inputs, which anyone who reads history
sees. Each carries an HMAC with a key the workers hold (QLRF_INTERNAL_KEY), over
what it says and whom it binds (the lock, the request's token, the batch, the
sequence number), so that reading history does not let anyone forge the next one.

The key is set once, as the worker starts (runner/worker.py), and read by workflow
code as pure data: every worker that runs qlrf-run's workflows must hold the same key,
and keep it while runs are open (a replay checks the same messages again).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from runner.canonical import canonical_bytes

_key: bytes | None = None


def configure(key: bytes) -> None:
    global _key
    _key = key


def configured() -> bool:
    return _key is not None


def key_id() -> str:
    """A name for the key that says nothing of it: which key a worker holds."""
    return _digest(b"qlrf-internal-key-id")[:16] if _key is not None else "none"


def _digest(data: bytes) -> str:
    return hmac.new(_key or b"", data, hashlib.sha256).hexdigest()


def mac(kind: str, *parts: Any) -> str:
    """The message's authenticator: over its kind and every part, canonical."""
    return _digest(canonical_bytes([kind, *parts]))


def valid(given: Any, kind: str, *parts: Any) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given, mac(kind, *parts))


def child_proof(child_id: str, plan_hash: str, inputs: Any) -> str:
    """What a run gives the child run it starts (a `runbook` step): the child takes its
    start, started_by and groups from its parent only with it."""
    from runner.trust.claims import inputs_hash

    return mac("child", child_id, plan_hash, inputs_hash(inputs))
