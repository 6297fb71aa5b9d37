"""`qlrf-run evidence RUN` for auditors, and `--verify FILE`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from runner.cli.common import EvidenceFormat, err, examples, exit_with, format_option, out
from runner.errors import QlrfError, UsageError


def evidence(
    run: str | None = typer.Argument(None, help="Run id (workflow id or Temporal run id)"),
    format: EvidenceFormat = format_option(EvidenceFormat.json),
    out_file: Path | None = typer.Option(None, "--out", help="Write the bundle to FILE"),
    verify: Path | None = typer.Option(
        None, "--verify", help="Check a JSON bundle: digest, hash chain and seal"
    ),
    allowed_signers: Path | None = typer.Option(
        None,
        "--allowed-signers",
        help="Trust file for the seal (OpenSSH allowed_signers; default QLRF_ALLOWED_SIGNERS)",
    ),
    against_store: bool = typer.Option(
        False, "--against-store", help="With --verify: also compare with the run store"
    ),
    unsealed_ok: bool = typer.Option(
        False,
        "--unsealed-ok",
        help="With --verify: accept the digest and the hash chain alone, when the bundle is "
        "not sealed or no trust file is given (else it is NOT VERIFIED)",
    ),
) -> None:
    """The evidence bundle of a run, from the run store; --verify checks one."""
    from runner.store.evidence import markdown
    from runner.store.evidence import verify as check

    if verify is not None:
        from runner.files import read_text

        try:
            bundle = json.loads(read_text(verify, "evidence bundle", 64 * 1024 * 1024))
        except ValueError as exc:
            raise UsageError(f"{verify}: not a readable JSON bundle ({exc})") from None
        ok, message = check(bundle, _trust_text(allowed_signers), unsealed_ok=unsealed_ok)
        if ok and against_store:
            ok, message = _against_store(bundle, message)
        (out if ok else err)(f"{verify}: {message}")
        exit_with(0 if ok else 1)
    if run is None:
        raise UsageError("give a RUN, or --verify FILE")
    import asyncio

    from runner.local.postgres import database_url
    from runner.store.queries import bundle as load

    found = asyncio.run(load(database_url(), run))
    if found is None:
        raise QlrfError(f"run '{run}' is not in the run store")
    text = (
        markdown(found)
        if format == EvidenceFormat.md
        else json.dumps(found, indent=2, sort_keys=True)
    )
    if out_file is None:
        out(text)
        return
    out_file.write_text(text + "\n", encoding="utf-8")
    out(f"wrote {out_file} (digest sha256 {found['digest']['value']})")


def _trust_text(given: Path | None) -> str | None:
    """The trust file's text: --allowed-signers, else QLRF_ALLOWED_SIGNERS, else None."""
    import os

    from runner.files import read_text

    path = given or (
        Path(os.environ["QLRF_ALLOWED_SIGNERS"]) if os.environ.get("QLRF_ALLOWED_SIGNERS") else None
    )
    if path is None:
        return None
    return read_text(path, "allowed signers file", 1024 * 1024)


def _against_store(bundle: dict[str, Any], said: str) -> tuple[bool, str]:
    """The bundle against the one the run store gives now (a row deleted or edited in
    the database since shows here, even in an unsealed run)."""
    import asyncio

    from runner.local.postgres import database_url
    from runner.plan.model import canonical
    from runner.store.queries import bundle as load

    run = (bundle.get("run") or {}).get("temporal_run_id") or (bundle.get("run") or {}).get(
        "run_id"
    )
    found = asyncio.run(load(database_url(), str(run)))
    if found is None:
        return False, f"run {run} is not in the run store"
    if canonical(found) != canonical(bundle):
        differing = sorted(k for k in set(found) | set(bundle) if found.get(k) != bundle.get(k))
        return False, f"the run store says otherwise ({', '.join(differing)})"
    return True, said + "; the run store gives the same bundle now"


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "qlrf-run evidence patch-fleet-3f2a9c1d0e4b --out evidence.json",
            "qlrf-run evidence patch-fleet-3f2a9c1d0e4b --format md > evidence.md",
            "qlrf-run evidence --verify evidence.json --allowed-signers allowed_signers",
            "qlrf-run evidence --verify evidence.json --against-store --allowed-signers signers",
            "qlrf-run evidence --verify evidence.json --unsealed-ok  # digest and chain only",
        )
    )(evidence)
