"""Evidence bundles for auditors: the facts of one run, with a sha256 digest.

The digest is the sha256 of the canonical JSON (sorted keys, no spaces) of the
bundle without its `digest`; `verify` recomputes it, so any change is detected.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from runner.plan.model import canonical
from runner.times import iso


def _iso(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def run_identity(run: Any) -> dict[str, Any]:
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


def digest_of(bundle: dict[str, Any]) -> str:
    body = {k: v for k, v in bundle.items() if k != "digest"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def build(
    run: dict[str, Any],
    steps: list[dict[str, Any]],
    audit: list[dict[str, Any]],
    redriven: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The evidence bundle (docs/store.md) from the store's rows; a redrive's bundle
    holds the bundle of the run it continued (`redriven`), so it covers both."""
    final: dict[tuple[str, Any], dict[str, Any]] = {}
    compensations: list[dict[str, Any]] = []
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
    for entry in audit:
        if entry["action"] != "gate_decided":
            continue
        detail = entry["detail"] or {}
        approvals.append(
            {
                "gate": detail.get("gate"),
                "decision": detail.get("decision"),
                "by": entry["actor"],
                "at": _iso(entry["at"]),
                "comment": detail.get("comment", ""),
                "modifications": detail.get("changes") or {},
            }
        )
    bundle: dict[str, Any] = {
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
    }
    if run.get("redrive_of"):
        bundle["run"]["redrive_of"] = run["redrive_of"]
        bundle["redrive_of"] = redriven
    bundle["digest"] = {"algorithm": "sha256", "value": digest_of(bundle)}
    return bundle


def verify(bundle: Any) -> tuple[bool, str]:
    if not isinstance(bundle, dict) or not isinstance(bundle.get("digest"), dict):
        return False, "not an evidence bundle: no digest"
    if bundle["digest"].get("algorithm") != "sha256":
        return False, f"unknown digest algorithm {bundle['digest'].get('algorithm')!r}"
    expected = digest_of(bundle)
    if bundle["digest"].get("value") != expected:
        return False, "the digest does not match: the bundle was altered after it was made"
    return True, f"digest verified (sha256 {expected})"


def markdown(bundle: dict[str, Any]) -> str:
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
    if bundle.get("compensations"):
        lines += [
            "",
            "## Compensations",
            "",
            "| step | status | attempt | started | finished | error |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for comp in bundle["compensations"]:
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
        lines.append(
            f"- {a['at']}: **{a['decision']}** of gate `{a['gate']}` by {a['by']}{comment}{change}"
        )
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
