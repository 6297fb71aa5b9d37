"""`qlrf-run evidence RUN` for auditors, and `--verify FILE`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from runner.cli.common import EvidenceFormat, err, examples, exit_with, format_option, out
from runner.errors import UsageError


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
    import asyncio

    from runner.app import evidence as app_evidence
    from runner.store.evidence import markdown

    if verify is not None:
        from runner.files import read_text

        try:
            found = json.loads(read_text(verify, "evidence bundle", 64 * 1024 * 1024))
        except ValueError as exc:
            raise UsageError(f"{verify}: not a readable JSON bundle ({exc})") from None
        if not isinstance(found, dict):
            raise UsageError(f"{verify}: not an evidence bundle (a JSON object)")
        trust = app_evidence.trust_text(allowed_signers)
        ok, message = asyncio.run(
            app_evidence.verify(found, trust, unsealed_ok=unsealed_ok, against_store=against_store)
        )
        (out if ok else err)(f"{verify}: {message}")
        exit_with(0 if ok else 1)
    if run is None:
        raise UsageError("give a RUN, or --verify FILE")
    found = asyncio.run(app_evidence.bundle(run))
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
