"""Notifications the run sends: each event to the channels routed for it.

Workflow code. The routes are the worker's (QLRF_NOTIFY_CONFIG, taken with the trust
snapshot at the run's start, so a replay sees the same) joined with the runbook's
own `notify:`. Each delivery is an activity of its own (runner/notify/deliver.py)
with its own retries and an idempotency key per (run, event, gate, round, channel);
it runs beside the run and never fails it: its outcome, and a failure's reason, go
to the audit trail. The run waits for its last deliveries before it closes, as it
waits for the store, so that nothing scheduled is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from runner.contract import NOTIFY_DELIVER_ACTIVITY
from runner.contract.vocab import AuditAction, NotifyEvent
from runner.engine.outbox import Outbox

# Runs from this version on send notifications and keep their gates' reminders and
# escalations. Asked at the start, before the trust snapshot.
NOTIFY = "qlrf-notify"
DELIVERY_TIMEOUT = timedelta(seconds=30)
# lock_waiting after a run waited this long, unless the worker's configuration says
# otherwise (its lock_notify_after, runner/notify/config.py).
LOCK_AFTER_MS = 600_000
DELIVERY_HEARTBEAT = timedelta(seconds=10)  # a worker that died is noticed this soon
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
)


def routes_of(
    worker: Mapping[str, Sequence[str]], runbook: Sequence[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """Each event's channels: the worker's routes, then the runbook's."""
    found = {str(event): [str(c) for c in channels] for event, channels in worker.items()}
    for route in runbook:
        for event in route.get("on") or []:
            known = found.setdefault(str(event), [])
            known += [str(c) for c in route.get("to") or [] if str(c) not in known]
    return found


class Notices:
    def __init__(
        self,
        routes: Mapping[str, list[str]],
        outbox: Outbox,
        *,
        lock_after_ms: int | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.outbox = outbox
        self.lock_after = timedelta(milliseconds=lock_after_ms or LOCK_AFTER_MS)
        self._sending: list[asyncio.Task[None]] = []
        self.sent: set[str] = set()  # ids of deliveries scheduled: one each, ever

    def wants(self, event: str) -> bool:
        return bool(self.routes.get(event))

    def send(
        self,
        event: NotifyEvent,
        data: dict[str, Any],
        *,
        gate: str | None = None,
        round_: int = 0,
        seq: int | None = None,
        about: str | None = None,
    ) -> None:
        """Deliver `event` to each channel routed for it, beside the run. `about` names
        what an event without a gate is of (a lock wait)."""
        run = workflow.info().workflow_id
        for channel in self.routes.get(event) or []:
            which = f"{event}:{gate or about or '-'}:{round_}"
            which += f".{seq}" if seq is not None else ""
            delivery = f"{which}:{channel}"
            if delivery in self.sent:
                continue
            self.sent.add(delivery)
            request = {
                "key": f"{run}/{delivery}",
                "event": str(event),
                "run": run,
                "channel": channel,
                "data": {**data, "gate": gate, "round": round_},
            }
            self._sending.append(asyncio.create_task(self._deliver(request, delivery)))

    async def _deliver(self, request: dict[str, Any], delivery: str) -> None:
        detail = {
            "event": request["event"],
            "channel": request["channel"],
            "gate": request["data"].get("gate"),
            "round": request["data"].get("round"),
        }
        try:
            result = await workflow.execute_activity(
                NOTIFY_DELIVER_ACTIVITY,
                request,
                activity_id=f"notify:{delivery}",
                summary=f"qlrf plumbing: notify {request['channel']} of {request['event']}",
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                retry_policy=DELIVERY_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            self.outbox.audit(AuditAction.NOTIFICATION_FAILED, None, {**detail, "reason": reason})
            return
        if isinstance(result, dict) and result.get("status") == "sent":
            self.outbox.audit(
                AuditAction.NOTIFICATION_SENT, None, {**detail, "answer": result.get("answer")}
            )
            return
        said = result.get("reason") if isinstance(result, dict) else None
        self.outbox.audit(
            AuditAction.NOTIFICATION_FAILED, None, {**detail, "reason": str(said or "no answer")}
        )

    async def settled(self) -> None:
        """Every delivery scheduled has ended (each records its own outcome)."""
        while self._sending:
            sending, self._sending = self._sending, []
            await asyncio.gather(*sending)
