"""The trust snapshot: the run's first act reads whom this worker trusts.

QLRF_ALLOWED_SIGNERS names an OpenSSH allowed_signers file; with it the worker is in
signed mode. The activity's result (the file's text and sha256, and the worker's
approver groups) is recorded in the run's history, so every check the run makes is
against what it saw at its start, a replay sees the same, and the person starting
a run cannot choose whom it trusts or which groups hold whom.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.contract import TRUST_SNAPSHOT_ACTIVITY
from runner.contract.wire import trust_mark
from runner.errors import QlrfError
from runner.files import FileRefused, read_text
from runner.trust import signers

ALLOWED_SIGNERS = "QLRF_ALLOWED_SIGNERS"
TRUST_FILE_BYTES = 1024 * 1024


def read_trust_file() -> dict[str, Any]:
    """{"mode": "claimed"} without QLRF_ALLOWED_SIGNERS; else signed mode, with the
    file's text and sha256. QlrfError naming the variable when it cannot be used."""
    path = os.environ.get(ALLOWED_SIGNERS, "").strip()
    if not path:
        return {"mode": "claimed"}
    try:
        text = read_text(path, f"{ALLOWED_SIGNERS} file", TRUST_FILE_BYTES)
    except FileRefused as exc:
        raise QlrfError(f"{ALLOWED_SIGNERS}: {exc}") from None
    try:
        found = signers.parse(text)
    except signers.TrustFileError as exc:
        raise QlrfError(f"{ALLOWED_SIGNERS} {path}: {exc}") from None
    if not found:
        raise QlrfError(f"{ALLOWED_SIGNERS} {path} lists no usable key: nobody could act")
    return {
        "mode": "signed",
        "path": os.path.abspath(path),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "text": text,
    }


_MARK: tuple[tuple[str, int, int], str] | None = None


def local_mark() -> str:
    """This worker's trust_mark, read again only when its trust file changes."""
    global _MARK
    path = os.environ.get(ALLOWED_SIGNERS, "").strip()
    if not path:
        return trust_mark("claimed", None)
    try:
        stat = os.stat(path)
    except OSError:
        return "unreadable"  # a signed run's steps are refused here, as they should be
    key = (path, stat.st_mtime_ns, stat.st_size)
    if _MARK is None or _MARK[0] != key:
        try:
            found = read_trust_file()
        except QlrfError:
            return "unreadable"
        _MARK = (key, trust_mark(found["mode"], found.get("sha256")))
    return _MARK[1]


def trust_snapshot(
    read_groups: Callable[[], dict[str, list[str]]],
    notify: Callable[[], dict[str, Any] | None] = lambda: None,
    policy: Callable[[], dict[str, Any] | None] = lambda: None,
) -> Callable[..., Any]:
    """The snapshot activity; `read_groups` gives the worker's approver groups, `notify`
    its notification routes (runner/notify/config.py NotifyConfig.snapshot), `policy`
    its QLRF_POLICY read again now (runner/dsl/policy_config.py), in signed mode."""

    @activity.defn(name=TRUST_SNAPSHOT_ACTIVITY)
    async def snapshot(_: Any = None) -> dict[str, Any]:
        try:
            found = read_trust_file()
            if found["mode"] == "signed":
                found["groups"] = read_groups()
                rules = policy()
                if rules is not None:
                    found["policy"] = rules
        except QlrfError as exc:
            raise ApplicationError(str(exc), type="Unauthenticated", non_retryable=True) from None
        routes = notify()
        if routes:
            found["notify"] = routes
        return found

    return snapshot


def worker_identity() -> str:
    """pid@host of the worker running this activity, as Temporal lists it."""
    try:
        return activity.client().identity
    except RuntimeError:  # outside an activity (a unit test)
        import socket

        return f"{os.getpid()}@{socket.gethostname()}"


def refuse_mismatch(wanted: str | None) -> None:
    """Refuse a step of a run in another identity mode than this worker's (claimed or
    signed), before anything runs or any secret is read: two workers of one queue set
    up differently would otherwise serve one run by turns. Another attempt may reach a
    worker set up right."""
    if wanted is None:
        return  # a run before its steps said whom they trust
    here = local_mark()
    if _mode(here) == _mode(wanted):
        # The same mode: a signers file replaced since the run began (a new approver)
        # is no mismatch; the run checks against the snapshot it took.
        return
    raise ApplicationError(
        f"worker {worker_identity()} trusts {_said(here)}, but this run trusts {_said(wanted)}: "
        f"every worker of the run's task queue must have the same {ALLOWED_SIGNERS} "
        "(docs/trust.md); nothing ran on this worker",
        type="WorkerMismatch",
    )


def _mode(mark: str) -> str:
    return mark.split(":", 1)[0]


def _said(mark: str) -> str:
    if mark.startswith("signed:"):
        return f"signers file sha256 {mark.removeprefix('signed:')[:12]} (signed mode)"
    return (
        "no signers file (claimed mode)" if mark == "claimed" else "a signers file it cannot read"
    )
