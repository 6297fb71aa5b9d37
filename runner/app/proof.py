"""Signing a request over what the run itself checks (docs/trust.md).

A decision or control request is signed when the run is in signed mode (its basis
says so) or this machine is set up to sign (QLRF_SIGNING_KEY, QLRF_ALLOWED_SIGNERS).
The claim is built from the run's own answer (its basis), so a signature the CLI
makes is the one the run verifies. `--as` is refused then: who acts is the key's
principal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from runner.client import signing
from runner.contract import CONTROL, DECIDE
from runner.contract.messages import Basis, JsonObject
from runner.trust import claims

# Who signs a claim for a front end that is not this machine's person: the web service
# vouches for the person it signed in (runner/web/vouch.py). None: this machine's key.
Signer = Callable[[claims.Claim], claims.Proof]


def refuse_as_early(as_user: str | None) -> None:
    """This machine signs: `--as` is refused before anything is asked of the server."""
    if signing.wanted_here():
        signing.refuse_as(as_user)


def wanted(basis: Basis) -> bool:
    return basis.signed or signing.wanted_here()


async def prove(
    payload: JsonObject,
    basis: Basis,
    kind: str,
    *,
    as_user: str | None = None,
    signer: Signer | None = None,
) -> JsonObject:
    """`payload` (a decision or control request as it travels) with its proof, when it
    must be signed; as it is otherwise. A `signer` (a service's vouch) signs whenever
    it is given, so that a run in signed mode always gets a proof from the service."""
    if signer is None and not wanted(basis):
        return payload
    if signer is not None and not basis.signed:
        return payload  # a claimed-mode run takes `by` as given; nothing to prove
    signing.refuse_as(as_user)
    signed = {k: v for k, v in payload.items() if k not in ("by", "proof")}
    if kind == DECIDE:
        gate = str(signed.get("gate"))
        claim = claims.decision_claim(signed, round_=basis.rounds.get(gate), **basis.ids())
    else:
        assert kind == CONTROL, kind
        claim = claims.control_claim(signed, **basis.ids())
    if signer is not None:
        signed["proof"] = signer(claim)  # in-process: a service signs many at once
    else:
        signed["proof"] = await asyncio.to_thread(signing.sign, claim)  # ssh-keygen
    return signed
