"""The `evidence` activity: write the evidence bundle of the run so far.

The workflow waits until its outbox has reached the store before this step runs,
so the bundle holds every event up to here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from temporalio import activity

from runner.contract import EVIDENCE_ACTIVITY, StepRequest, StepResult
from runner.steps.common import fail, resolved, result
from runner.steps.secrets import Resolver
from runner.store.evidence import markdown, sealed_now


@activity.defn(name=EVIDENCE_ACTIVITY)
async def evidence(request: StepRequest) -> StepResult:
    from runner.store.activity import pool
    from runner.store.queries import bundle_in

    secrets = Resolver()
    params, _ = await resolved(secrets, request)
    found = await bundle_in(await pool(), request.run_id)
    if found is None:
        fail(
            secrets,
            "EvidenceFailed",
            f"run {request.run_id} is not in the run store; is the store on (QLRF_STORE)?",
        )
    try:
        found = await sealed_now(found)  # with QLRF_SEAL_KEY: the record so far, sealed
    except (OSError, RuntimeError, TimeoutError) as exc:
        fail(secrets, "EvidenceFailed", f"cannot seal the bundle: {exc}")
    text = (
        markdown(found)
        if params.get("format") == "md"
        else json.dumps(found, indent=2, sort_keys=True)
    )
    path = Path(params["path"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path = write_new(path, text + "\n", activity.info().workflow_run_id or request.run_id)
    except OSError as exc:
        fail(secrets, "EvidenceFailed", f"cannot write {path}: {exc.strerror}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return result(secrets, {"path": str(path), "sha256": digest})


def write_new(path: Path, text: str, run: str) -> Path:
    """Write `text` at `path`, or beside it (NAME-2.json, ...) when `path` holds another
    run's evidence: a bundle is never overwritten but by a retry of its own run. The
    path written is returned."""
    candidate, n = path, 1
    while True:
        try:
            with open(candidate, "x", encoding="utf-8") as handle:
                handle.write(text)
            return candidate
        except FileExistsError:
            if _ours(candidate, run):
                candidate.write_text(text, encoding="utf-8")
                return candidate
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")


def _ours(path: Path, run: str) -> bool:
    """Whether `path` is a bundle of this run (its Temporal run id is in it)."""
    try:
        with open(path, "rb") as handle:
            return run.encode() in handle.read(256 * 1024 * 1024)
    except OSError:
        return False
