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


def trust_snapshot(read_groups: Callable[[], dict[str, list[str]]]) -> Callable[..., Any]:
    """The snapshot activity; `read_groups` gives the worker's approver groups."""

    @activity.defn(name=TRUST_SNAPSHOT_ACTIVITY)
    async def snapshot(_: Any = None) -> dict[str, Any]:
        try:
            found = read_trust_file()
            if found["mode"] == "signed":
                found["groups"] = read_groups()
        except QlrfError as exc:
            raise ApplicationError(str(exc), type="Unauthenticated", non_retryable=True) from None
        return found

    return snapshot
