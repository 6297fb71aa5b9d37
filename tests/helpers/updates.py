"""Sending a run an Update as it arrives from any client: the payload as given, after the
checks every qlrf-run client makes first (runner/app/reach.py), signed as the CLI signs
it when asked."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from runner.app import updates
from runner.app.context import Context
from runner.app.proof import prove
from runner.app.reach import Unreached, reach
from runner.client.connect import Target


def _context(client: Client) -> Context:
    return Context(client, Target(client.service_client.config.target_host, "default", None, False))


async def update(
    client: Client, run: str, name: str, request: Any, *, signed: bool = False
) -> tuple[bool, Any]:
    """(True, the Update's result) or (False, the reason it was refused). With `signed`,
    the request is signed over the run's basis first, in signed mode (proof.py)."""
    try:
        reached = await reach(_context(client), run, name)
        if signed:
            request = await prove(request, reached.basis, name)
        return True, await updates.send(reached, name, request)
    except Unreached as exc:
        return False, str(exc)


async def signed(client: Client, run: str, request: dict[str, Any], name: str) -> dict[str, Any]:
    """The request as the CLI would send it: signed over the run's own basis."""
    reached = await reach(_context(client), run, name)
    return await prove(request, reached.basis, name)
