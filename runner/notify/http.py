"""One POST to a receiver, its failure sorted into refused, unreachable or uncertain."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx

from runner.notify.failures import Refused, Uncertain, Unreachable

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
RETRY_LATER = frozenset((408, 425, 429))


# One client per event loop of this process: making one costs milliseconds of CPU
# (its TLS context), which a worker delivering many notifications should not pay each
# time; connections to one receiver are kept and reused.
_CLIENTS: dict[int, tuple[weakref.ReferenceType[asyncio.AbstractEventLoop], httpx.AsyncClient]] = {}


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    for key, (ref, _) in list(_CLIENTS.items()):
        other = ref()
        if other is None or (other is not loop and other.is_closed()):
            del _CLIENTS[key]  # its loop has ended (a worker started again, a test)
    entry = _CLIENTS.get(id(loop))
    if entry is not None and entry[0]() is loop:
        return entry[1]
    made = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
    _CLIENTS[id(loop)] = (weakref.ref(loop), made)
    return made


async def post(url: str, *, what: str, **kwargs: Any) -> httpx.Response:
    """The answer of a 2xx; Refused, Unreachable or Uncertain otherwise."""
    try:
        response = await client().post(url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise Unreachable(f"{what} cannot be reached: {type(exc).__name__}: {exc}") from None
    except httpx.InvalidURL as exc:
        raise Refused(f"{what}: not a URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise Uncertain(f"{what} did not answer: {type(exc).__name__}: {exc}") from None
    if response.status_code in RETRY_LATER or response.status_code >= 500:
        # The far end says it did not take it: another attempt is no duplicate.
        raise Unreachable(f"{what} answered {response.status_code}")
    if response.status_code >= 300:
        raise Refused(f"{what} answered {response.status_code}: {response.text[:200]}")
    return response
