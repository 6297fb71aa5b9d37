"""The hash chain of a run's record, and the seal over it (docs/trust.md).

Every `step_events` and `audit_log` row of a run is a link: its `hash` is the
sha256 of `prev_hash` and the row's canonical content, in the order the rows were
written. Deleting, editing or reordering a row breaks every link after it. When
the run ends, the worker signs the head of the chain and the run's final row with
its seal key (QLRF_SEAL_KEY, namespace `qlrf-seal`), so someone who can write to the
database but has no seal key cannot make an edited record verify again.

Pure, but for `seal_signature`, which runs `ssh-keygen`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import datetime
from typing import Any

from runner.canonical import canonical_bytes
from runner.store.db import Row
from runner.times import iso

SEAL_KEY = "QLRF_SEAL_KEY"
SEAL_NAMESPACE = "qlrf-seal"
STEP_FIELDS = (
    "batch",
    "seq",
    "at",
    "step",
    "item",
    "attempt",
    "status",
    "started_at",
    "finished_at",
    "output",
    "error",
)
AUDIT_FIELDS = ("seq", "at", "actor", "action", "detail")
RUN_FIELDS = (
    "run_id",
    "workflow_id",
    "name",
    "kind",
    "plan_hash",
    "definition_file",
    "definition_sha256",
    "definition_text",
    "inputs",
    "status",
    "started_by",
    "started_at",
    "finished_at",
    "outputs",
    "error",
    "redrive_of",
)


canonical = canonical_bytes


def _plain(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def link(table: str, row: Row) -> Row:
    """What a row's hash covers: its table and fields, times as ISO text."""
    fields = STEP_FIELDS if table == "step" else AUDIT_FIELDS
    content = {"table": table, **{name: _plain(row.get(name)) for name in fields}}
    if table == "step" and row.get("worker") is not None:
        # Only rows that name their worker cover it: older rows hash as before.
        content["worker"] = row["worker"]
    return content


def link_hash(prev_hash: str, content: Row) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(content)).hexdigest()


def run_record(row: Row) -> Row:
    """The run's row as the seal covers it."""
    return {name: _plain(row.get(name)) for name in RUN_FIELDS}


def run_hash(record: Row) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def seal_text(record: Row, head: str, length: int) -> bytes:
    """What the seal signs: the run's final row and the head of its chain."""
    return canonical(
        {
            "namespace": SEAL_NAMESPACE,
            "run_id": record.get("run_id"),
            "workflow_id": record.get("workflow_id"),
            "run_hash": run_hash(record),
            "chain_head": head,
            "chain_length": length,
        }
    )


def check_chain(rows: list[Row]) -> tuple[str, int]:
    """(head, length) of links in chain order ({"table", fields..., "prev_hash",
    "hash"}); ValueError naming the first broken link."""
    head = ""
    for position, row in enumerate(rows, start=1):
        if row.get("prev_hash") != head:
            raise ValueError(
                f"link {position} ({row.get('table')} seq {row.get('seq')}) does not follow "
                "the one before it: a row was deleted, inserted or reordered"
            )
        content = link(str(row.get("table")), row)
        if link_hash(head, content) != row.get("hash"):
            raise ValueError(
                f"link {position} ({row.get('table')} seq {row.get('seq')}) does not match "
                "its hash: the row was edited"
            )
        head = str(row["hash"])
    return head, len(rows)


async def sealed(record: Row, head: str, length: int) -> Row | None:
    """The seal of a record (a run's row, and the head and length of its chain), signed
    with the worker's seal key; None when it has none."""
    signature = await seal_signature(seal_text(record, head, length))
    if signature is None:
        return None
    return {
        "namespace": SEAL_NAMESPACE,
        "signature": signature,
        "chain_head": head,
        "chain_length": length,
        "run_hash": run_hash(record),
    }


async def seal_signature(text: bytes) -> str | None:
    """An SSHSIG of `text` with the worker's seal key; None when it has none."""
    key = os.environ.get(SEAL_KEY, "").strip()
    if not key:
        return None
    process = await asyncio.create_subprocess_exec(
        "ssh-keygen",
        "-q",
        "-Y",
        "sign",
        "-f",
        key,
        "-n",
        SEAL_NAMESPACE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(text), timeout=60)
    if process.returncode != 0:
        reason = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(
            f"{SEAL_KEY}: ssh-keygen could not sign the seal: "
            f"{reason[-1] if reason else 'no signature'}"
        )
    return out.decode()
