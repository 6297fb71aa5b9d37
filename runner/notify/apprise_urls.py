"""Every other service (Teams, PagerDuty, ntfy, Matrix, ...) through an apprise URL."""

from __future__ import annotations

import asyncio

import apprise

from runner.notify.failures import Refused, Unreachable
from runner.notify.messages import Notice


async def send(url: str, notice: Notice) -> str:
    sender = apprise.Apprise()
    if not sender.add(url):
        raise Refused("apprise does not know this URL's service (see apprise's list of URLs)")
    # apprise sends synchronously; its own threads stay off the worker's event loop
    delivered = await asyncio.to_thread(sender.notify, body=notice.text(), title=notice.title())
    if not delivered:
        raise Unreachable("apprise could not deliver (the service refused or did not answer)")
    return "delivered"
