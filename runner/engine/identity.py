"""Who the run's people are: claimed, or proven by signature (docs/trust.md).

Workflow code: no I/O. The trust snapshot (an activity, recorded in history) says
the worker's mode. In `claimed` mode names are taken as given and marked
unverified. In `signed` mode the start and every decision and control action must
carry an SSH signature over the claim the run builds itself (runner/trust/claims.py),
by a key the snapshot's trust file lists; the identity is that key's principal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from runner.contract import START_ADMISSION_ACTIVITY, TRUST_SNAPSHOT_ACTIVITY
from runner.trust import claims
from runner.trust.signers import Signer, TrustFileError, parse

# Runs from this version on read the trust snapshot as their first act. Every patch
# such a run asks must be asked before it (see snapshot): later behaviour changes are
# keyed on this one, or on a patch asked at the start.
TRUST = "qlrf-trust"
# Runs from this version on prove their start on the worker too (admit): a signed start
# is spent once, ever; a schedule's signature starts only that schedule's own runs; a
# redrive keeps what the store says, and is claimed by one run. A redrive's signature
# covers what it continues. Asked at the start, before the trust snapshot.
START_ONCE = "qlrf-start-once"
ADMISSION_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0)


@dataclass
class Trust:
    mode: str = "claimed"
    sha256: str | None = None
    signers: list[Signer] = field(default_factory=list)
    groups: dict[str, list[str]] | None = None
    used_nonces: set[str] = field(default_factory=set)
    problem: str | None = None  # the snapshot could not be taken: nothing may run
    # The worker's notification routes and channel names (no credentials), or None.
    notify: dict[str, Any] | None = None
    # The worker's policy (QLRF_POLICY) as the run took it, or None (signed mode only).
    policy: dict[str, Any] | None = None

    @property
    def signed(self) -> bool:
        return self.mode == "signed"

    def verify(
        self, proof: Any, expected: claims.Claim, claimed_by: Any = None, *, window: bool = True
    ) -> str:
        """The principal who signed `expected`; claims.Unauthenticated otherwise."""
        return claims.check(
            proof,
            expected,
            self.signers,
            workflow.now(),
            self.used_nonces,
            claimed_by,
            window=window,
        )

    def actor(self, proof: Any, expected: claims.Claim, claimed_by: Any = None) -> claims.Actor:
        """Who signed `expected`, and how (their key, a certificate, a service's vouch)."""
        return claims.actor(
            proof, expected, self.signers, workflow.now(), self.used_nonces, claimed_by
        )

    def spend(self, proof: Any) -> None:
        if isinstance(proof, dict) and isinstance(proof.get("nonce"), str):
            self.used_nonces.add(proof["nonce"])


async def snapshot() -> Trust:
    """Read whom the worker trusts; a Trust with `problem` when it cannot be read."""
    try:
        # A local activity: one marker in history, no workflow task of its own. Its
        # result may reach the run in another workflow task on replay than when it
        # ran, so the run asks no patch after it (interpreter.py, campaign.py).
        found = await workflow.execute_local_activity(
            TRUST_SNAPSHOT_ACTIVITY,
            None,
            activity_id="trust-snapshot",
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="qlrf plumbing: read the trust snapshot",
        )
    except ActivityError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        return Trust(mode="signed", problem=f"the worker's trust file cannot be used: {message}")
    notify = found.get("notify") if isinstance(found, dict) else None
    notify = notify if isinstance(notify, dict) else None
    if not isinstance(found, dict) or found.get("mode") != "signed":
        return Trust(notify=notify)
    try:
        signers = parse(str(found.get("text") or ""))
    except TrustFileError as exc:
        return Trust(mode="signed", problem=f"the worker's trust file cannot be used: {exc}")
    groups = found.get("groups")
    policy = found.get("policy")
    return Trust(
        policy=policy if isinstance(policy, dict) else None,
        mode="signed",
        sha256=str(found.get("sha256") or ""),
        signers=signers,
        groups={str(k): [str(m) for m in v] for k, v in groups.items()}
        if isinstance(groups, dict)
        else {},
        notify=notify,
    )


async def admit(request: dict[str, Any]) -> dict[str, Any]:
    """The worker's word on the start (runner/steps/admission.py): {"refused", "redrive"}."""
    found = await workflow.execute_local_activity(
        START_ADMISSION_ACTIVITY,
        request,
        activity_id="start-admission",
        start_to_close_timeout=timedelta(seconds=60),
        # The store may be down: the start waits for it, as every write does.
        retry_policy=ADMISSION_RETRY,
        summary="qlrf plumbing: prove the start (spent once; schedule; redrive)",
    )
    return dict(found) if isinstance(found, dict) else {"refused": "no answer", "redrive": None}
