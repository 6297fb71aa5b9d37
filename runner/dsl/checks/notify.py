"""Checks on `notify:`: the channels a runbook routes to are the worker's to define
(QLRF_NOTIFY_CONFIG), so a name is checked against the configuration this machine
has, when it has one; a warning, since the workers' configuration may differ."""

from __future__ import annotations

import os
from collections.abc import Iterator

from runner.dsl.diagnostics import Diagnostic
from runner.dsl.document import Document
from runner.dsl.loader import load_file
from runner.suggest import hint

VARIABLE = "QLRF_NOTIFY_CONFIG"


def known_channels() -> tuple[str, list[str]] | None:
    """(the file, its channel names) of QLRF_NOTIFY_CONFIG here; None without one."""
    path = os.environ.get(VARIABLE, "").strip()
    if not path or not os.path.isfile(path):
        return None
    data = load_file(path).data
    channels = data.get("channels") if isinstance(data, dict) else None
    return path, sorted(str(c) for c in channels) if isinstance(channels, dict) else []


def detect_unknown_channels(doc: Document) -> Iterator[Diagnostic]:
    routes = doc.data.get("notify") if isinstance(doc.data, dict) else None
    if not isinstance(routes, list) or not routes:
        return
    known = known_channels()
    if known is None:
        return
    path, names = known
    for i, route in enumerate(routes):
        to = route.get("to") if isinstance(route, dict) else None
        for j, name in enumerate(to if isinstance(to, list) else []):
            if isinstance(name, str) and name not in names:
                yield doc.diag(
                    ("notify", i, "to", j),
                    "unknown-channel",
                    f"channel '{name}' is not in the notification configuration here "
                    f"({VARIABLE}={path}){hint(name, names)}: a worker configured the same "
                    "way cannot deliver to it, and records the failure in the run's audit "
                    "trail; define it under channels: on the workers, or fix the name",
                    severity="warning",
                )
