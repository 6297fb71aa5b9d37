"""A `qlrf-run worker` process with its metrics and health ports, for the tests of
what the worker offers those who run it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from runner.local.temporal import free_port
from tests.helpers.cli import EXE, ROOT
from tests.helpers.waiting import eventually

WAIT_SECONDS = 60  # a guard against hangs, not a speed check


def until(
    check: Callable[[], Any], what: str | Callable[[], str], seconds: float = WAIT_SECONDS
) -> Any:
    """Wait for `check` to be true (tests/helpers/waiting.py)."""
    return eventually(check, what, seconds)


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`qlrf-run ARGS` on its own, its output in `log` (read back by the test)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [EXE, *args], cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out
        )


def get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def answer(port: int, path: str) -> httpx.Response | None:
    """GET, or None while nothing listens there yet."""
    try:
        return get(port, path)
    except httpx.TransportError:
        return None


def ready(port: int) -> bool:
    found = answer(port, "/readyz")
    return found is not None and found.status_code == 200


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def ports() -> tuple[int, int]:
    return free_port(), free_port()
