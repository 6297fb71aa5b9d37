"""What every operation works with: the Temporal client and where it points."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError

from runner.client.connect import Target, connect, target

# What a front end catches when Temporal does not answer (it imports no Temporal itself).
ServerError = RPCError


@dataclass
class Context:
    client: Client
    where: Target

    @property
    def ui_url(self) -> str | None:
        return self.where.ui_url


async def connected(*, ui: bool = True) -> Context:
    """A Context for this machine's settings (QLRF_TEMPORAL_ADDRESS, else the embedded
    server, started if need be)."""
    where = target(ui=ui)
    return Context(await connect(where), where)
