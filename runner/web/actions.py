"""Decisions and control requests of a signed-in person: runner/app's operations, with
the service's vouch when the person is verified, and the per-person rate limit. The
pages and the API both come here, so neither decides in its own way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.app.control import ControlAsk, Controlled, cancel, control
from runner.app.decide import Decided, DecideRequest, decide
from runner.app.proof import Signer
from runner.contract.vocab import ControlAction, DecisionKind
from runner.web.service import Service
from runner.web.vouch import Person


class RateLimited(Exception):
    """Too many decisions from one person in a minute."""


@dataclass
class Outcome:
    """What the run said, with the HTTP status the API answers it with."""

    status: int  # 200 accepted, 404 no such gate, 409 refused
    detail: str | None
    body: Any = None


def signer_for(service: Service, person: Person) -> Signer | None:
    """The service's vouch for a verified person; nobody vouches for a local name."""
    if not person.verified or service.voucher is None:
        return None
    voucher = service.voucher
    return lambda claim: voucher.proof(claim, person)


async def decide_as(
    service: Service,
    person: Person,
    run: str,
    gate: str,
    kind: DecisionKind,
    comment: str = "",
    *,
    assignments: Sequence[str] = (),
    changes: Mapping[str, Any] | None = None,
    round_: int | None = None,
) -> tuple[Outcome, Decided]:
    if not service.limiter.allow(person.principal):
        raise RateLimited(person.principal)
    ctx = await service.ctx()
    done = await decide(
        ctx,
        DecideRequest(
            run,
            gate,
            kind,
            by=person.principal,
            comment=comment,
            assignments=assignments,
            files=False,
            changes=changes,
            signer=signer_for(service, person),
            round=round_,
        ),
    )
    if done.no_gate:
        return Outcome(404, done.refused), done
    if not done.accepted:
        return Outcome(409, done.refused), done
    return Outcome(200, None, done.gate.to_json()), done


async def control_as(
    service: Service,
    person: Person,
    run: str,
    action: ControlAction,
    *,
    comment: str = "",
    step: str | None = None,
    concurrency: int | None = None,
    items: Sequence[str] = (),
) -> Outcome:
    if not service.limiter.allow(person.principal):
        raise RateLimited(person.principal)
    ctx = await service.ctx()
    if action == ControlAction.CANCEL:
        # `qlrf-run cancel`'s operation: who cancels is recorded, then Temporal cancels.
        why = await cancel(ctx, run, person.principal, signer=signer_for(service, person))
        return Outcome(409, why) if why else Outcome(200, None, {"action": "cancel"})
    done: Controlled = await control(
        ctx,
        ControlAsk(
            run,
            action,
            person.principal,
            comment=comment,
            step=step,
            concurrency=concurrency,
            items=list(items),
            signer=signer_for(service, person),
        ),
    )
    if not done.accepted:
        return Outcome(409, done.refused)
    return Outcome(200, None, dict(done.record or {}))
