"""Dynamic secrets live exactly as long as the attempt that took them.

Each activity attempt gets an Attempt (a context variable, set by LeaseInterceptor
around every activity). A `vault-lease:` secret taken by the attempt is renewed
while the step runs and revoked when it ends: succeeded, failed, cancelled or timed
out. The lease ids travel in the attempt's heartbeats (runner/steps/common.py), so
when a worker dies mid-step, the next attempt revokes what the lost one held before
it takes its own. A lease id names a lease; it is not the secret and grants nothing
without a vault token allowed to renew or revoke it.

Heartbeat details are not the worker's alone: anyone who may use the namespace can
record a heartbeat for a running activity. So the ids carry an HMAC with the
workers' internal key (runner/trust/internal.py), bound to the run and the activity,
and only ids under a path the worker's configuration leases from are revoked: a
forged heartbeat cannot make the worker revoke another step's lease, or any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from runner.trust import internal
from runner.vault import client as vault
from runner.vault.client import Lease
from runner.vault.refs import LeaseRef

log = logging.getLogger("qlrf.vault")


@dataclass
class Attempt:
    """The leases one attempt holds, and those a lost attempt left to revoke."""

    leases: list[Lease] = field(default_factory=list)
    earlier: list[str] = field(default_factory=list)
    renewer: asyncio.Task[None] | None = None

    def ids(self) -> list[str]:
        return [*self.earlier, *(lease.id for lease in self.leases if lease.id)]

    def add(self, lease: Lease) -> None:
        self.leases.append(lease)
        if lease.renewable and lease.seconds and self.renewer is None:
            self.renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        """Keep every renewable lease alive while the step runs."""
        due = {lease.id: lease.seconds for lease in self.leases}
        while True:
            # As the worker's token: renewed when a third of its time is left.
            wait = min((s for s in due.values() if s), default=60) * (1 - vault.RENEW_AT)
            await asyncio.sleep(max(1.0, wait))
            for lease in list(self.leases):
                if not lease.renewable or not lease.id:
                    continue
                try:
                    due[lease.id] = await asyncio.to_thread(vault.vault().renew_lease, lease.id)
                except vault.VaultError as exc:
                    log.warning("cannot renew lease %s: %s", lease.id, exc)
            for lease in self.leases:
                due.setdefault(lease.id, lease.seconds)

    async def close(self) -> None:
        """Stop renewing, and revoke every lease this attempt (or a lost one) held."""
        if self.renewer is not None:
            self.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewer
        for lease_id in self.ids():
            await _revoke(lease_id)
        self.leases.clear()
        self.earlier.clear()


async def _revoke(lease_id: str) -> bool:
    try:
        await asyncio.to_thread(vault.vault().revoke, lease_id)
        return True
    except vault.VaultError as exc:
        # It runs out at its TTL anyway; the next attempt (if any) tries again.
        log.warning("cannot revoke lease %s (it expires at its TTL): %s", lease_id, exc)
        return False


_ATTEMPT: ContextVar[Attempt | None] = ContextVar("qlrf_lease_attempt", default=None)


def current() -> Attempt | None:
    return _ATTEMPT.get()


def heartbeat_fields() -> dict[str, Any]:
    """The lease ids this attempt holds, and their authenticator, for its heartbeats."""
    attempt = _ATTEMPT.get()
    ids = attempt.ids() if attempt is not None else []
    return {"leases": ids, "leases_mac": _mac(ids)} if ids else {}


def _mac(ids: list[str]) -> str:
    info = activity.info()
    return internal.mac("leases", info.workflow_id, info.activity_id, ids)


def _ours(lease_id: str) -> bool:
    config = vault.configured()
    refs = config.secrets.values() if config is not None else ()
    return any(lease_id.startswith(f"{ref.path}/") for ref in refs if isinstance(ref, LeaseRef))


def _left_by_earlier_attempt() -> list[str]:
    """What a lost attempt of this activity held, as its own heartbeats said it."""
    info = activity.info()
    details = info.heartbeat_details[0] if info.heartbeat_details else None
    found = details.get("leases") if isinstance(details, dict) else None
    if not isinstance(details, dict) or not isinstance(found, list) or not found:
        return []
    ids = [str(x) for x in found]
    if not internal.valid(
        details.get("leases_mac"), "leases", info.workflow_id, info.activity_id, ids
    ):
        log.warning("a heartbeat names leases this worker did not record; none revoked")
        return []
    return [lease_id for lease_id in ids if _ours(lease_id)]


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if vault.configured() is None:
            return await super().execute_activity(input)
        attempt = Attempt()
        token = _ATTEMPT.set(attempt)
        try:
            for lease_id in _left_by_earlier_attempt():
                if not await _revoke(lease_id):
                    attempt.earlier.append(lease_id)
            return await super().execute_activity(input)
        finally:
            # Shielded: a cancel or a timeout must not stop the revocation halfway.
            await asyncio.shield(attempt.close())
            _ATTEMPT.reset(token)


class LeaseInterceptor(Interceptor):
    """Gives every activity attempt its Attempt, and revokes its leases as it ends."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)
