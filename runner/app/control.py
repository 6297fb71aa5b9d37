"""Live control of a running run: pause, resume, a fan-out's concurrency, skipping items,
and cancelling it.

Each is the run's `control` Update: its validator refuses at once with the reason,
and an accepted action is recorded like a gate decision, signed in signed mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.client import WorkflowExecutionStatus

from runner.app import updates
from runner.app.context import Context
from runner.app.proof import Signer, prove, refuse_as_early
from runner.app.reach import Unreached, described, reach
from runner.client import signing
from runner.contract import CONTROL, LIVE_MEMO
from runner.contract.messages import ControlRequest
from runner.contract.state import ControlJson
from runner.contract.vocab import ControlAction


@dataclass
class ControlAsk:
    run: str
    action: ControlAction
    by: str
    comment: str = ""
    step: str | None = None
    concurrency: int | None = None
    items: list[str] = field(default_factory=list)
    as_user: str | None = None  # refused when the request is signed
    signer: Signer | None = None  # a service vouching for its signed-in person


@dataclass
class Controlled:
    record: ControlJson | None  # as the run recorded it
    refused: str | None = None
    signed: bool = False  # the run said it is in signed mode (its basis)

    @property
    def accepted(self) -> bool:
        return self.refused is None


async def control(ctx: Context, ask: ControlAsk) -> Controlled:
    """Send the request as the run's `control` Update."""
    if ask.signer is None:
        refuse_as_early(ask.as_user)
    signed = False
    try:
        reached = await reach(ctx, ask.run, CONTROL)
        signed = reached.basis.signed
        payload = ControlRequest(
            action=ask.action,
            by=ask.by,
            comment=ask.comment,
            step=ask.step,
            concurrency=ask.concurrency,
            items=list(ask.items),
        ).to_json()
        payload = await prove(
            payload, reached.basis, CONTROL, as_user=ask.as_user, signer=ask.signer
        )
        answer: ControlJson = await updates.send(reached, CONTROL, payload)
    except Unreached as exc:
        return Controlled(None, str(exc), signed)
    return Controlled(answer, signed=signed)


async def cancel(
    ctx: Context, run: str, by: str, *, as_user: str | None = None, signer: Signer | None = None
) -> str | None:
    """Ask a running run to cancel: running steps stop, compensations and `finally` run.
    None when asked; else why not, as people read it. Who cancels is recorded first (in
    signed mode proven, docs/trust.md, and refused when it cannot be)."""
    handle, description = await described(ctx, run)
    if description.status != WorkflowExecutionStatus.RUNNING:
        name = description.status.name.lower() if description.status else "closed"
        return f"run {run} has already ended ({name}); only a running run can be cancelled"
    memo = await description.memo()
    picture = memo.get(LIVE_MEMO)
    identity = picture.get("identity") if isinstance(picture, dict) else None
    mode = identity.get("mode") if isinstance(identity, dict) else None
    done = await control(
        ctx, ControlAsk(run, ControlAction.CANCEL, by, as_user=as_user, signer=signer)
    )
    # A run that has not published its mode yet said it in its basis, if it answered.
    signed = mode == "signed" or signing.wanted_here() or done.signed
    if signed and not done.accepted:
        return f"refused: {done.refused}"
    # In claimed mode the record of who cancels is kept when a worker answers; the
    # cancel itself needs no worker, and goes to Temporal whatever the answer was.
    await handle.cancel()
    return None
