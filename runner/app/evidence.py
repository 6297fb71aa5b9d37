"""Evidence bundles for auditors, from the run store, and checking one.

A bundle is verified by its digest, its hash chain and its seal (docs/trust.md);
without a trust file it is NOT VERIFIED unless the person accepts digest and chain
alone. Checked against the store, a row edited or deleted since shows.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.contract.messages import JsonObject
from runner.errors import QlrfError
from runner.files import read_text
from runner.local.postgres import database_url
from runner.plan.model import canonical
from runner.store.evidence import verify as check
from runner.store.queries import bundle as load

TRUST_VARIABLE = "QLRF_ALLOWED_SIGNERS"


async def bundle(run: str) -> JsonObject:
    """The run's bundle (by workflow id or Temporal run id); QlrfError when the store
    does not have it."""
    found = await load(database_url(), run)
    if found is None:
        raise QlrfError(f"run '{run}' is not in the run store")
    return found


def trust_text(given: Path | None) -> str | None:
    """The trust file's text: `given`, else QLRF_ALLOWED_SIGNERS, else None."""
    path = given or (Path(os.environ[TRUST_VARIABLE]) if os.environ.get(TRUST_VARIABLE) else None)
    if path is None:
        return None
    return read_text(path, "allowed signers file", 1024 * 1024)


async def verify(
    found: JsonObject, trust: str | None, *, unsealed_ok: bool, against_store: bool
) -> tuple[bool, str]:
    """(verified, what was checked or what is wrong)."""
    ok, message = check(found, trust, unsealed_ok=unsealed_ok)
    if ok and against_store:
        ok, message = await _against_store(found, message)
    return ok, message


async def _against_store(found: JsonObject, said: str) -> tuple[bool, str]:
    """The bundle against the one the run store gives now (a row deleted or edited in
    the database since shows here, even in an unsealed run)."""
    run_row = found.get("run") or {}
    run = run_row.get("temporal_run_id") or run_row.get("run_id")
    now = await load(database_url(), str(run))
    if now is None:
        return False, f"run {run} is not in the run store"
    if canonical(now) != canonical(found):
        differing = sorted(k for k in set(now) | set(found) if now.get(k) != found.get(k))
        return False, f"the run store says otherwise ({', '.join(differing)})"
    return True, said + "; the run store gives the same bundle now"
