"""What a person signs for an action on a run, and how the run checks it. Pure.

The signed text is a canonical JSON (sorted keys, no spaces) of CLAIM_FIELDS; a
field that does not apply to the action is null. The workflow never takes these
fields from the request: it builds the claim from what it knows (its id, its
Temporal run id, the gate's round, its plan hash, the hash of its inputs now)
plus what the person asked (gate, decision, set, comment) and the signature's
nonce and `not_after`. A signature made for another run, gate, round, plan or
inputs therefore signs another text, and does not verify.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from runner.canonical import canonical_bytes
from runner.times import parse
from runner.trust import signers as trust_file
from runner.trust.sshsig import BadSignature, verify

NAMESPACE = "qlrf"
SEAL_NAMESPACE = "qlrf-seal"
# A service (the web page, Slack) signs for the person it signed in, with its own key.
VOUCH_NAMESPACE = "qlrf-vouch"
VIA_KEYS = ("service", "issuer", "subject", "auth_time")
PRINCIPAL_LIMIT = 320
_VIA_TEXT_LIMIT = 500
CLAIM_FIELDS = (
    "action",
    "run_id",
    "temporal_run_id",
    "gate",
    "round",
    "decision",
    "set",
    "comment",
    "plan_hash",
    "inputs_hash",
    "nonce",
    "not_after",
)
MAX_AHEAD = timedelta(minutes=10)
# How every refusal of a start begins (a refusal of the start's proof, not its inputs).
UNPROVEN = "the start is not proven"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


# The signed claim: every CLAIM_FIELDS key, those that do not apply null.
class Claim(TypedDict, total=False):
    action: Any
    run_id: Any
    temporal_run_id: Any
    gate: Any
    round: Any
    decision: Any
    set: Any
    comment: Any
    plan_hash: Any
    inputs_hash: Any
    nonce: Any
    not_after: Any


class Proof(TypedDict, total=False):
    """What a signed request carries: the SSH signature over its claim, and the claim's
    nonce and window; a schedule's names the schedule, a child run's its parent's MAC."""

    signature: str
    nonce: str
    not_after: str
    schedule: str
    parent: str
    # A vouched action (namespace qlrf-vouch): for whom the service signs, and how it
    # knows them ({"service", "issuer", "subject", "auth_time"}).
    principal: str
    via: dict[str, Any]


@dataclass(frozen=True)
class Actor:
    """Who a proof proves: the principal, and how (None: their own SSH key)."""

    principal: str
    via: dict[str, Any] | None = None


def printable(text: str) -> bool:
    """No control character: a name shown to people and kept in records."""
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def names_someone(principal: object) -> bool:
    """A principal a service may vouch for: a printable text, 1 to 320 characters."""
    return (
        isinstance(principal, str)
        and 0 < len(principal) <= PRINCIPAL_LIMIT
        and printable(principal)
    )


class Unauthenticated(Exception):
    """The action's signature does not prove who asked; the message says why."""


canonical = canonical_bytes


def inputs_hash(inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(inputs))).hexdigest()


def claim(**fields: Any) -> Claim:
    """The claim with every field, those not given null."""
    unknown = set(fields) - set(CLAIM_FIELDS)
    assert not unknown, unknown
    return cast(Claim, {name: fields.get(name) for name in CLAIM_FIELDS})


def check(
    proof: Any,
    expected: Mapping[str, Any],
    signers: Sequence[trust_file.Signer],
    now: datetime,
    used_nonces: set[str] | frozenset[str] = frozenset(),
    claimed_by: Any = None,
    *,
    window: bool = True,
) -> str:
    """The principal who signed `expected` (a claim without nonce and not_after, which
    come from `proof`); Unauthenticated with the reason otherwise.

    `proof` is the request's {"signature", "nonce", "not_after"}. Without `window`
    (a schedule's signature, which stands for every run it starts) neither the time
    window nor the nonce's use is checked."""
    return actor(proof, expected, signers, now, used_nonces, claimed_by, window=window).principal


def actor(
    proof: Any,
    expected: Mapping[str, Any],
    signers: Sequence[trust_file.Signer],
    now: datetime,
    used_nonces: set[str] | frozenset[str] = frozenset(),
    claimed_by: Any = None,
    *,
    window: bool = True,
) -> Actor:
    """As check, with how the principal is known: their key, a certificate of a CA the
    trust file names, or a service's vouch (`principal` and `via` in the proof)."""
    if not isinstance(proof, Mapping) or not proof.get("signature"):
        raise Unauthenticated(
            "this worker runs in signed mode and the request carries no signature; "
            "send it with qlrf-run, which signs with QLRF_SIGNING_KEY"
        )
    nonce, not_after = proof.get("nonce"), proof.get("not_after")
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        raise Unauthenticated("the signature's nonce is missing or malformed")
    if window and nonce in used_nonces:
        raise Unauthenticated("this signature was used already (its nonce is spent)")
    try:
        deadline = parse(not_after) if isinstance(not_after, str) else None
    except ValueError:
        deadline = None
    if deadline is None:
        raise Unauthenticated("the signature's not_after is missing or not a time")
    if not window:
        pass
    elif deadline < now:
        raise Unauthenticated(f"the signature expired at {not_after}; sign the action again")
    if deadline > now + MAX_AHEAD:
        raise Unauthenticated("the signature's not_after is more than 10 minutes ahead")
    fields = {**expected, "nonce": nonce, "not_after": not_after}
    if "principal" in proof or "via" in proof:
        return _vouched(proof, fields, signers, claimed_by)
    try:
        signer = verify(str(proof.get("signature")), canonical(fields), NAMESPACE)
    except BadSignature as exc:
        raise Unauthenticated(f"the signature does not verify: {exc}") from None
    via: dict[str, Any] | None = None
    if signer.certificate is not None:
        principals, why = trust_file.certified(list(signers), signer.certificate, NAMESPACE, now)
        if not principals:
            raise Unauthenticated(why)
        via = {"certificate": signer.certificate.key_id}
    else:
        principals = trust_file.principals_of(list(signers), signer.key, NAMESPACE)
    if not principals:
        raise Unauthenticated(
            "the signing key is not in the worker's trust file (QLRF_ALLOWED_SIGNERS) "
            f"for namespace {NAMESPACE}"
        )
    if isinstance(claimed_by, str) and claimed_by:
        if claimed_by not in principals:
            raise Unauthenticated(
                f"the request says {claimed_by!r}, but the key belongs to {', '.join(principals)}"
            )
        return Actor(claimed_by, via)
    return Actor(principals[0], via)


def vouch_text(fields: Mapping[str, Any], principal: str, via: Mapping[str, Any]) -> bytes:
    """What a service signs for a person: the claim, its nonce and window, and who."""
    return canonical({**fields, "principal": principal, "via": dict(via)})


def _vouched(
    proof: Mapping[str, Any],
    fields: Mapping[str, Any],
    signers: Sequence[trust_file.Signer],
    claimed_by: Any,
) -> Actor:
    """A service's signature for a person it signed in: its key must be on a line for
    qlrf-vouch whose patterns name that person."""
    principal, via = proof.get("principal"), proof.get("via")
    if not isinstance(principal, str) or not principal or len(principal) > PRINCIPAL_LIMIT:
        raise Unauthenticated("a vouched action names its principal (a text)")
    if not printable(principal):
        raise Unauthenticated("the vouched principal holds control characters")
    if not isinstance(via, Mapping) or not set(via) <= set(VIA_KEYS) or "service" not in via:
        raise Unauthenticated(
            f"a vouched action says how it was vouched: via {{{', '.join(VIA_KEYS)}}}"
        )
    for value in via.values():
        if not (value is None or isinstance(value, int | str)) or (
            isinstance(value, str) and len(value) > _VIA_TEXT_LIMIT
        ):
            raise Unauthenticated("via holds texts and numbers only")
    try:
        signer = verify(
            str(proof.get("signature")), vouch_text(fields, principal, via), VOUCH_NAMESPACE
        )
    except BadSignature as exc:
        raise Unauthenticated(f"the vouch does not verify: {exc}") from None
    lines = (
        []
        if signer.certificate
        else trust_file.vouchers(list(signers), signer.key, VOUCH_NAMESPACE)
    )
    if not lines:
        raise Unauthenticated(
            "the vouching key is not in the worker's trust file (QLRF_ALLOWED_SIGNERS) "
            f'on a line with namespaces="{VOUCH_NAMESPACE}"'
        )
    if not any(line.names(principal) for line in lines):
        patterns = ", ".join(p for line in lines for p in line.principals)
        raise Unauthenticated(
            f"the service may not vouch for {principal!r}: its key vouches for {patterns} only"
        )
    if isinstance(claimed_by, str) and claimed_by and claimed_by != principal:
        raise Unauthenticated(
            f"the request says {claimed_by!r}, but the vouch is for {principal!r}"
        )
    return Actor(principal, dict(via))


def start_claim(
    run_id: str,
    plan_hash: str,
    inputs: Mapping[str, Any],
    redrive: Any = None,
    provenance: Any = None,
) -> Claim:
    """What `apply` (and `redrive`) signs: this plan, with these inputs, as this run id;
    for a redrive, also which run it continues and how ({"of", "from", "reapprove"});
    and where the runbook came from (its git provenance), when the start says."""
    extra: dict[str, Any] = {}
    if redrive is not None:
        extra["redrive"] = redrive
    if provenance is not None:
        extra["provenance"] = provenance
    return claim(
        action="start",
        run_id=run_id,
        plan_hash=plan_hash,
        inputs_hash=inputs_hash(inputs),
        set=extra or None,
    )


def decision_claim(
    decision: Mapping[str, Any],
    *,
    run_id: str,
    temporal_run_id: str,
    round_: int | None,
    plan_hash: str,
    inputs_hash_now: str,
) -> Claim:
    """What `approve`, `reject` and `modify` sign: one decision at one round of one gate."""
    kind = decision.get("decision")
    return claim(
        action=kind,
        run_id=run_id,
        temporal_run_id=temporal_run_id,
        gate=decision.get("gate"),
        round=round_,
        decision=kind,
        set=decision.get("set") if kind == "modify" else None,
        comment=decision.get("comment") or None,
        plan_hash=plan_hash,
        inputs_hash=inputs_hash_now,
    )


CONTROL_ACTIONS = {"pause": "pause", "resume": "resume", "concurrency": "set", "skip": "skip"}


def control_claim(
    request: Mapping[str, Any],
    *,
    run_id: str,
    temporal_run_id: str,
    plan_hash: str,
    inputs_hash_now: str,
) -> Claim:
    """What `pause`, `resume`, `set`, `skip` and `cancel` sign."""
    action = request.get("action")
    changes: Mapping[str, Any] | None = None
    if action == "concurrency":
        changes = {"step": request.get("step"), "concurrency": request.get("concurrency")}
    elif action == "skip":
        changes = {"step": request.get("step"), "items": request.get("items")}
    return claim(
        action=CONTROL_ACTIONS.get(str(action), str(action)),
        run_id=run_id,
        temporal_run_id=temporal_run_id,
        set=changes,
        comment=request.get("comment") or None,
        plan_hash=plan_hash,
        inputs_hash=inputs_hash_now,
    )


def schedule_claim(schedule_id: str, plan_hash: str, inputs: Mapping[str, Any]) -> Claim:
    """What `schedule create` and `schedule update` sign: this plan, with these inputs,
    on this schedule, for every run it starts."""
    return claim(
        action="schedule",
        run_id=schedule_id,
        plan_hash=plan_hash,
        inputs_hash=inputs_hash(inputs),
    )
