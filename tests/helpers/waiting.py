"""Waiting for something to become true, in tests: one helper for every polling loop.

`eventually(check, what)` calls `check` until it returns something truthy and
returns that; after `seconds` it fails with what never happened. `check` may be a
plain function or (with `eventually_async`) a coroutine function. No fixed sleep is a
substitute for it: the machine is shared and its speed varies.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2


def _said(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def eventually(
    check: Callable[[], Any],
    what: str | Callable[[], str],
    seconds: float = WAIT_SECONDS,
    *,
    poll: float = POLL_SECONDS,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """The first truthy value of `check()`; AssertionError naming `what` after `seconds`.
    Exceptions of the `ignoring` types count as not yet (a server still starting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except ignoring:
            pass
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {_said(what)}")
        time.sleep(poll)


async def eventually_async(
    check: Callable[[], Any],
    what: str | Callable[[], str],
    seconds: float = WAIT_SECONDS,
    *,
    poll: float = POLL_SECONDS,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """As eventually, for a check that may be a coroutine function (a query, a describe):
    exceptions of the `ignoring` types count as not yet (a workflow that does not exist
    yet, a query no worker answered yet)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            found: Any = check()
            value = await found if inspect.isawaitable(found) else found
        except ignoring:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {_said(what)}")
        await asyncio.sleep(poll)
