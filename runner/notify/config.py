"""Read the worker's QLRF_NOTIFY_CONFIG: YAML checked against its own JSON Schema
(schemas/notify-config.schema.json), then what a schema cannot say: routes name
defined channels, addresses are addresses, and every `secret:NAME` is set here.

The worker and `serve` read it once as they start and refuse to start on a bad one,
naming the file, line and key, so that no gate meets a channel that cannot work.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from runner import durations
from runner.dsl.diagnostics import Diagnostic
from runner.dsl.document import Document
from runner.dsl.loader import load_file
from runner.dsl.notify_schema import SCHEMA
from runner.dsl.secrets_config import translate
from runner.errors import QlrfError
from runner.suggest import hint

VARIABLE = "QLRF_NOTIFY_CONFIG"
DEFAULT_SLACK_API = "https://slack.com/api"
LOCK_NOTIFY_AFTER = "10m"
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
# An address alone: no display name, no header-breaking characters.
_ADDRESS = re.compile(r"^[^@\s<>,;\"']+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
SECRET_PREFIX = "secret:"


class NotifyConfigError(QlrfError):
    """The file cannot be used; the message lists each problem and where it is."""


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    settings: dict[str, Any]  # as written: credentials stay secret:NAME references

    def secret_name(self, key: str) -> str | None:
        value = self.settings.get(key)
        if isinstance(value, str) and value.startswith(SECRET_PREFIX):
            return value.removeprefix(SECRET_PREFIX)
        return None


@dataclass(frozen=True)
class NotifyConfig:
    path: str
    channels: dict[str, Channel] = field(default_factory=dict)
    routes: list[tuple[list[str], list[str]]] = field(default_factory=list)
    lock_notify_after_ms: int = durations.parse_ms(LOCK_NOTIFY_AFTER)

    def routed(self) -> dict[str, list[str]]:
        """Each event's channels, in the order the routes name them."""
        found: dict[str, list[str]] = {}
        for events, channels in self.routes:
            for event in events:
                known = found.setdefault(event, [])
                known += [c for c in channels if c not in known]
        return found

    def snapshot(self) -> dict[str, Any]:
        """What a run takes at its start (no credentials): the routes, the channels' names."""
        return {
            "routes": self.routed(),
            "channels": sorted(self.channels),
            "lock_notify_after_ms": self.lock_notify_after_ms,
        }

    def slack_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.kind == "slack"]


def load(path: str | None = None, *, missing_secret: Any = None) -> NotifyConfig | None:
    """The configuration QLRF_NOTIFY_CONFIG names; None when the variable is unset.
    `missing_secret(name)` says why a secret cannot be had (None when it can)."""
    path = path if path is not None else os.environ.get(VARIABLE, "").strip()
    if not path:
        return None
    doc = load_file(path, start_from="give its channels: and routes: keys (docs/notifications.md)")
    problems = list(doc.diagnostics)
    if not problems:
        problems = sorted(set(_checked(doc)))
    if not problems and missing_secret is not None:
        problems = list(_secrets(doc, missing_secret))
    if problems:
        shown = "\n".join(f"  {p.text()}" for p in problems[:20])
        raise NotifyConfigError(f"{VARIABLE} names a file that cannot be used:\n{shown}")
    return _built(doc, path)


def _checked(doc: Document) -> Iterator[Diagnostic]:
    data = doc.data
    if not isinstance(data, dict):
        yield doc.diag((), "bad-value", "the file is a mapping with channels: and routes:")
        return
    errors = list(_VALIDATOR.iter_errors(data))
    for error in errors:
        yield from translate(doc, error)
    if errors:
        return
    channels = data.get("channels") or {}
    for name, settings in channels.items():
        if settings["kind"] == "email":
            for key, value in [
                ("from", settings["from"]),
                *((("to", i), v) for i, v in enumerate(settings["to"])),
            ]:
                where = ("channels", name, *((key,) if isinstance(key, str) else key))
                if not _ADDRESS.match(str(value)):
                    yield doc.diag(
                        where, "bad-value", f"{value!r} is not an e-mail address (name@domain)"
                    )
            port = int(str(settings["smtp"]).rsplit(":", 1)[1])
            if not 0 < port < 65536:
                yield doc.diag(
                    ("channels", name, "smtp"), "bad-value", f"port {port} is not a port"
                )
    for index, route in enumerate(data.get("routes") or []):
        for position, name in enumerate(route["to"]):
            if name not in channels:
                known = sorted(channels)
                yield doc.diag(
                    ("routes", index, "to", position),
                    "unknown-channel",
                    f"route to '{name}', which is not a channel here{hint(name, known)}; "
                    f"channels: {', '.join(known) or 'none'}",
                )
    after = data.get("lock_notify_after")
    if after is not None and not durations.is_duration(after):
        yield doc.diag(("lock_notify_after",), "bad-value", f"{after!r} is not a duration (10m)")


def _secrets(doc: Document, missing: Any) -> Iterator[Diagnostic]:
    for name, settings in (doc.data.get("channels") or {}).items():
        for key, value in settings.items():
            if isinstance(value, str) and value.startswith(SECRET_PREFIX):
                why = missing(value.removeprefix(SECRET_PREFIX))
                if why:
                    yield doc.diag(("channels", name, key), "missing-secret", why)


def _built(doc: Document, path: str) -> NotifyConfig:
    data = doc.data or {}
    channels = {
        str(name): Channel(str(name), str(settings["kind"]), dict(settings))
        for name, settings in (data.get("channels") or {}).items()
    }
    routes = [
        ([str(e) for e in route["on"]], [str(c) for c in route["to"]])
        for route in data.get("routes") or []
    ]
    after = data.get("lock_notify_after") or LOCK_NOTIFY_AFTER
    return NotifyConfig(path, channels, routes, durations.parse_ms(str(after)))
