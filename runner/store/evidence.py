"""Evidence bundles for auditors: the facts of one run, with a sha256 digest.

The digest is the sha256 of the canonical JSON (sorted keys, no spaces) of the
bundle without its `digest`; `verify` recomputes it, so any change is detected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from runner.canonical import canonical_bytes
from runner.contract.messages import JsonObject
from runner.plan.model import canonical
from runner.store import chain
from runner.store.db import Row
from runner.times import iso

# An evidence bundle: the JSON document an auditor keeps (docs/store.md says each key).
Bundle = dict[str, Any]


def _iso(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def run_identity(run: Any) -> JsonObject:
    """The run's row as every command shows it: RUN is the workflow id, the store's key is
    Temporal's run id."""
    return {
        "run_id": run["workflow_id"],
        "temporal_run_id": run["run_id"],
        "name": run["name"],
        "kind": run["kind"],
        "status": run["status"],
        "started_at": _iso(run["started_at"]),
        "finished_at": _iso(run["finished_at"]),
    }


def digest_of(bundle: Bundle) -> str:
    body = {k: v for k, v in bundle.items() if k != "digest"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


REDRIVE_CHAIN = 50  # redrives of redrives followed back (history, evidence, redrive)
CONTROL_ACTIONS = {
    "run_paused": "pause",
    "run_resumed": "resume",
    "concurrency_set": "set",
    "items_skipped": "skip",
    "cancel_requested": "cancel",
}


def build(
    run: Row,
    steps: list[Row],
    audit: list[Row],
    redriven: Bundle | None = None,
    links: list[Row] | None = None,
) -> Bundle:
    """The evidence bundle (docs/store.md) from the store's rows; a redrive's bundle
    holds the bundle of the run it continued (`redriven`), so it covers both.

    With the run's hash chain (`links`, docs/trust.md), the bundle carries the record
    it was built from (the run's row and every link) and the run's seal, so
    `verify` can rebuild it and prove it."""
    final: dict[tuple[str, Any], Row] = {}
    compensations: list[Row] = []
    for event in steps:  # in seq order: the last event of a step is its outcome
        if str(event["status"]).startswith("compensation_"):
            compensations.append(
                {
                    "step": event["step"],
                    "status": event["status"].removeprefix("compensation_"),
                    "attempt": event["attempt"],
                    "started_at": _iso(event["started_at"]),
                    "finished_at": _iso(event["finished_at"]),
                    "error": event["error"],
                }
            )
            continue
        key = (event["step"], event["item"])
        entry = final.setdefault(
            key,
            {
                "id": event["step"],
                "item": event["item"],
                "status": None,
                "attempts": 0,
                "started_at": None,
                "finished_at": None,
                "output": None,
                "error": None,
            },
        )
        entry["attempts"] = max(entry["attempts"], event["attempt"] or 0)
        # The step began with its first attempt; each later row holds its own attempt.
        entry["started_at"] = entry["started_at"] or _iso(event["started_at"])
        if event["status"] == "failed" and entry["status"] not in (None, "started", "failed"):
            continue  # an earlier attempt's failure, written after the outcome
        entry["status"] = event["status"]
        entry["finished_at"] = _iso(event["finished_at"]) or entry["finished_at"]
        if event["status"] != "started":
            entry["output"], entry["error"] = event["output"], event["error"]
    approvals = []
    controls: list[JsonObject] = []
    identity: JsonObject = {
        "mode": "claimed",
        "trust_sha256": None,
        "started_by_verified": False,
    }
    for entry in audit:
        detail = entry["detail"] or {}
        if entry["action"] == "run_started":
            identity = {
                "mode": "signed" if detail.get("trust_sha256") else "claimed",
                "trust_sha256": detail.get("trust_sha256"),
                "started_by_verified": bool(detail.get("verified")),
            }
            # Only when the start said: bundles of runs before them read as they did.
            if detail.get("provenance") is not None:
                identity["provenance"] = detail["provenance"]
            if detail.get("policy") is not None:
                identity["policy"] = detail["policy"]
        asked = any(c["action"] == "cancel" for c in controls)
        if entry["action"] == "run_finished" and detail.get("status") == "cancelled" and not asked:
            # A cancel reaches the run through Temporal, which does not say who sent it.
            controls.append(
                {"action": "cancel", "by": None, "verified": False, "at": _iso(entry["at"])}
            )
        if entry["action"] in CONTROL_ACTIONS:
            controls.append(
                {
                    "action": CONTROL_ACTIONS[entry["action"]],
                    "by": entry["actor"],
                    "verified": bool(detail.get("verified")),
                    "at": _iso(entry["at"]),
                    "step": detail.get("step"),
                    "comment": detail.get("comment") or "",
                    "concurrency": detail.get("concurrency"),
                    "items": detail.get("items"),
                }
            )
        if entry["action"] != "gate_decided":
            continue
        approvals.append(
            {
                "gate": detail.get("gate"),
                "decision": detail.get("decision"),
                "by": entry["actor"],
                "verified": bool(detail.get("verified")),
                "at": _iso(entry["at"]),
                "comment": detail.get("comment", ""),
                "modifications": detail.get("changes") or {},
            }
        )
    if run.get("redrive_of"):
        controls.insert(
            0,
            {
                "action": "redrive",
                "by": run["started_by"],
                "verified": identity["started_by_verified"],
                "at": _iso(run["started_at"]),
                "of": run["redrive_of"],
            },
        )
    # Every attempt of every step and item, those lost with their worker included.
    attempts = [
        {
            "step": e["step"],
            "item": e["item"],
            "attempt": e["attempt"],
            "status": e["status"],
            "started_at": _iso(e["started_at"]),
            "finished_at": _iso(e["finished_at"]),
            "error": e["error"],
        }
        for e in steps
        if e["status"] != "started"
    ]
    bundle: Bundle = {
        "run": {**run_identity(run), "started_by": run["started_by"]},
        "definition": {
            "file": run["definition_file"],
            "sha256": run["definition_sha256"],
            "text": run["definition_text"],
        },
        "plan_hash": run["plan_hash"],
        "inputs": run["inputs"],
        "steps": list(final.values()),
        "compensations": compensations,
        "approvals": approvals,
        "controls": controls,
        "attempts": attempts,
        "identity": identity,
    }
    if links is not None:
        bundle["record"] = {"run": chain.run_record(run), "links": links}
        bundle["seal"] = run.get("seal")
    if run.get("redrive_of"):
        bundle["run"]["redrive_of"] = run["redrive_of"]
        bundle["redrive_of"] = redriven
    bundle["digest"] = {"algorithm": "sha256", "value": digest_of(bundle)}
    return bundle


async def sealed_now(bundle: Bundle) -> Bundle:
    """The bundle of a run still going (the `evidence` step's), sealed as it stands with
    the worker's seal key, when it has one: the seal covers the record up to here."""
    record = bundle.get("record")
    if not record or bundle.get("seal"):
        return bundle
    head, length = chain.check_chain(record["links"])
    seal = await chain.sealed(record["run"], head, length)
    if seal is None:
        return bundle
    bundle["seal"] = seal
    bundle["digest"] = {"algorithm": "sha256", "value": digest_of(bundle)}
    return bundle


NOT_VERIFIED = "NOT VERIFIED"


def verify(
    bundle: Any, allowed_signers: str | None = None, *, unsealed_ok: bool = False
) -> tuple[bool, str]:
    """Check a bundle: its digest; its record's hash chain; that the bundle is what its
    record builds; and, given the trust file's text, the worker's seal over the record.
    (ok, what was checked or why it failed).

    Nothing is ever verified short of that: a bundle without its record, or whose seal
    cannot be checked for want of a trust file, is NOT VERIFIED, unless `unsealed_ok`
    says the digest and the chain are enough (the caller's choice, said in the
    answer)."""
    try:
        return _verify(bundle, allowed_signers, unsealed_ok, 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return False, f"not a well-formed evidence bundle ({type(exc).__name__}: {exc})"


def _verify(
    bundle: Any, allowed_signers: str | None, unsealed_ok: bool, depth: int
) -> tuple[bool, str]:
    if not isinstance(bundle, dict) or not isinstance(bundle.get("digest"), dict):
        return False, "not an evidence bundle: no digest"
    if bundle["digest"].get("algorithm") != "sha256":
        return False, f"unknown digest algorithm {bundle['digest'].get('algorithm')!r}"
    expected = digest_of(bundle)
    if bundle["digest"].get("value") != expected:
        return False, "the digest does not match: the bundle was altered after it was made"
    said = [f"digest verified (sha256 {expected})"]
    earlier = bundle.get("redrive_of")
    if isinstance(earlier, dict) and depth < REDRIVE_CHAIN:
        ok, message = _verify(earlier, allowed_signers, unsealed_ok, depth + 1)
        if not ok:
            return False, f"the redriven run's bundle: {message}"
    record = bundle.get("record")
    if record is None:
        return False, (
            f"{said[0]}; {NOT_VERIFIED}: the bundle carries no hash-chained record (a run "
            "recorded before hash chains, or a record that was dropped), so nothing proves "
            "what it says"
        )
    links = record["links"]
    try:
        head, length = chain.check_chain(links)
    except ValueError as exc:
        return False, f"the hash chain is broken: {exc}"
    said.append(f"hash chain of {length} rows verified")
    rebuilt = build(
        record["run"],
        sorted(
            (link for link in links if link["table"] == "step"),
            key=lambda r: (r["at"], r["batch"], r["seq"]),
        ),
        sorted((link for link in links if link["table"] == "audit"), key=lambda r: r["seq"]),
        earlier,
        links,
    )
    rebuilt["seal"] = bundle.get("seal")
    mine = {k: v for k, v in bundle.items() if k != "digest"}
    theirs = {k: v for k, v in rebuilt.items() if k != "digest"}
    if canonical(mine) != canonical(theirs):
        differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        return False, (
            f"the bundle says other things than its record ({', '.join(differing)}): it was edited"
        )
    seal = bundle.get("seal")
    sealed = isinstance(seal, dict) and bool(seal.get("signature"))
    if allowed_signers is None or (unsealed_ok and not sealed):
        if unsealed_ok:
            why = "the seal was not checked" if sealed else "the run is not sealed"
            return True, "; ".join(said) + f"; {why} (--unsealed-ok)"
        return False, "; ".join(said) + (
            f"; {NOT_VERIFIED}: "
            + (
                "the seal cannot be checked without the trust file that lists the sealing key"
                if sealed
                else "the run is not sealed (its worker had no QLRF_SEAL_KEY)"
            )
            + "; give --allowed-signers FILE (or QLRF_ALLOWED_SIGNERS), or --unsealed-ok to "
            "accept the digest and the hash chain alone"
        )
    problem, signer = _seal_problem(seal, record["run"], head, length, allowed_signers)
    if problem is not None:
        return False, "; ".join(said) + f"; the seal does not prove it: {problem}"
    return True, "; ".join(said) + f"; sealed by {signer}"


def _seal_problem(
    seal: Any, run: Row, head: str, length: int, allowed_signers: str
) -> tuple[str | None, str | None]:
    """(why the seal does not prove the record, None) or (None, the sealing principal)."""
    from runner.trust import signers as trust_file
    from runner.trust.sshsig import BadSignature
    from runner.trust.sshsig import verify as check_signature

    if not isinstance(seal, dict) or not seal.get("signature"):
        reason = seal.get("error") if isinstance(seal, dict) else None
        return f"it is not sealed{f' ({reason})' if reason else ''}", None
    if seal.get("chain_head") != head or seal.get("chain_length") != length:
        return "the seal is over another chain", None
    try:
        signer = check_signature(
            str(seal["signature"]), chain.seal_text(run, head, length), chain.SEAL_NAMESPACE
        )
        known = trust_file.parse(allowed_signers)
    except (BadSignature, trust_file.TrustFileError) as exc:
        return str(exc), None
    principals = trust_file.principals_of(known, signer.key, chain.SEAL_NAMESPACE)
    if not principals:
        return f"its key is not allowed to seal (namespace {chain.SEAL_NAMESPACE})", None
    return None, principals[0]


def _identities(bundle: Bundle) -> str:
    identity = bundle.get("identity") or {}
    if identity.get("mode") == "signed":
        shown = (
            "- Identities: **verified** by SSH signature against the worker's trust file "
            f"(sha256 `{identity.get('trust_sha256')}`)"
        )
    else:
        shown = "- Identities: **not verified** (claimed mode: names are as people gave them)"
    policy = identity.get("policy")
    if isinstance(policy, dict):
        rules = ", ".join(str(r.get("index")) for r in policy.get("rules") or []) or "none"
        shown += f"\n- Policy: sha256 `{policy.get('sha256')}`, rules applied: {rules}"
    found = identity.get("provenance")
    if isinstance(found, dict):
        shown += f"\n- Provenance: {provenance_line(found)}"
    return shown


def provenance_line(found: Mapping[str, Any]) -> str:
    """Where a runbook came from, in one line (evidence, status, the run page)."""
    if not found.get("git"):
        return str(found.get("note") or "not in a git checkout")
    commit = str(found.get("commit") or "no commit")
    state = "clean" if found.get("clean") else "NOT matching its commit"
    if not found.get("tracked"):
        state = "NOT committed"
    signature = found.get("signature") or {}
    signed = (
        f"signed by {signature.get('signer')}"
        if signature.get("verified")
        else "signature not verified"
    )
    return (
        f"{found.get('remote') or 'no remote'} {found.get('path')} at {commit[:12]} "
        f"({state}; {signed}; on {', '.join(found.get('branches') or []) or 'no branch'})"
    )


# An output longer than this is cut in the Markdown (the JSON bundle holds it whole).
OUTPUT_SHOWN = 500


def _compensation_outcomes(rows: list[Row]) -> list[Row]:
    """One row per compensation: its outcome, with the time it started (the JSON keeps
    the `started` row and the outcome apart, as the record has them). A step is
    compensated once, however many attempts that took."""
    began = {r["step"]: r.get("started_at") for r in rows if r["status"] == "started"}
    ended = [r for r in rows if r["status"] != "started"]
    done = {r["step"] for r in ended}
    shown = [{**r, "started_at": r.get("started_at") or began.get(r["step"])} for r in ended]
    # a compensation still running when the bundle was made
    shown += [r for r in rows if r["status"] == "started" and r["step"] not in done]
    return shown


def markdown(bundle: Bundle) -> str:
    run = bundle["run"]
    lines = [
        f"# Evidence: {run['name']} ({run['kind']})",
        "",
        f"- Run: `{run['run_id']}` (Temporal run `{run['temporal_run_id']}`)",
        f"- Status: **{run['status']}**",
        f"- Started by {run['started_by']} at {run['started_at']}; finished at "
        f"{run['finished_at'] or '(not finished)'}",
        f"- Definition: `{bundle['definition']['file']}`, sha256 "
        f"`{bundle['definition']['sha256']}`",
        f"- Plan hash: `{bundle['plan_hash']}`",
        _identities(bundle),
        "",
        "## Inputs",
        "",
        "```json",
        json.dumps(bundle["inputs"], indent=2, sort_keys=True),
        "```",
        "",
        "## Steps",
        "",
        "| step | status | attempts | started | finished | error |",
        "|---|---|---|---|---|---|",
    ]
    for step in bundle["steps"]:
        error = f"{step['error']['type']}: {step['error']['message']}" if step["error"] else ""
        name = step["id"] + (f" [{step['item']}]" if step["item"] else "")
        lines.append(
            f"| {name} | {step['status']} | {step['attempts']} | "
            f"{step['started_at'] or ''} | {step['finished_at'] or ''} | "
            f"{error.replace('|', '/')} |"
        )
    failed = [a for a in bundle.get("attempts") or [] if a.get("status") == "failed"]
    if failed:
        lines += [
            "",
            "## Failed attempts",
            "",
            "| step | attempt | started | failed | error |",
            "|---|---|---|---|---|",
        ]
        for a in failed:
            error = f"{a['error']['type']}: {a['error']['message']}" if a.get("error") else ""
            name = a["step"] + (f" [{a['item']}]" if a.get("item") else "")
            lines.append(
                f"| {name} | {a['attempt'] or ''} | {a['started_at'] or ''} | "
                f"{a['finished_at'] or ''} | {error.replace('|', '/')} |"
            )
    outputs = [s for s in bundle["steps"] if s.get("output") is not None]
    if outputs:
        lines += ["", "## Outputs", ""]
        for step in outputs:
            name = step["id"] + (f" [{step['item']}]" if step["item"] else "")
            text = json.dumps(step["output"], sort_keys=True)
            shown = text if len(text) <= OUTPUT_SHOWN else text[:OUTPUT_SHOWN] + " ..."
            lines.append(f"- `{name}`: `{shown.replace('`', chr(39))}`")
    if bundle.get("compensations"):
        lines += [
            "",
            "## Compensations",
            "",
            "| step | status | attempt | started | finished | error |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for comp in _compensation_outcomes(bundle["compensations"]):
            error = f"{comp['error']['type']}: {comp['error']['message']}" if comp["error"] else ""
            lines.append(
                f"| {comp['step']} | {comp['status']} | {comp['attempt'] or ''} | "
                f"{comp['started_at'] or ''} | {comp['finished_at'] or ''} | "
                f"{error.replace('|', '/')} |"
            )
    lines += ["", "## Approvals", ""]
    if not bundle["approvals"]:
        lines.append("No approval gate in this run.")
    for a in bundle["approvals"]:
        change = (
            f"; changed {json.dumps(a['modifications'], sort_keys=True)}"
            if a["modifications"]
            else ""
        )
        comment = f': "{a["comment"]}"' if a["comment"] else ""
        who = f"{a['by']} ({'verified' if a.get('verified') else 'unverified'})"
        lines.append(
            f"- {a['at']}: **{a['decision']}** of gate `{a['gate']}` by {who}{comment}{change}"
        )
    if bundle.get("controls"):
        lines += ["", "## Control actions", ""]
        for c in bundle["controls"]:
            who = c["by"] or "someone through Temporal"
            mark = "verified" if c.get("verified") else "unverified"
            where = f" of step `{c['step']}`" if c.get("step") else ""
            lines.append(f"- {c['at']}: **{c['action']}**{where} by {who} ({mark})")
    lines += [
        "",
        "## Definition as applied",
        "",
        "```yaml",
        bundle["definition"]["text"] or "",
        "```",
        "",
        f"Digest: sha256 `{bundle['digest']['value']}` over the canonical JSON of this "
        "bundle (`qlrf-run evidence --verify` checks it).",
    ]
    return "\n".join(lines)
