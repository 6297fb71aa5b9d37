"""The operator's configuration: approver groups and notification sinks.

File: $XDG_CONFIG_HOME/qlrf-run/config.yaml (default ~/.config/qlrf-run/config.yaml)

    groups:                      # used by approvers: ["group:sre"]
      sre: [alice, bob]
      payments-leads: [carol]
    notify:
      webhook: https://hooks.example.com/qlrf   # gate notifications are POSTed here

QLRF_GROUPS_FILE names a file holding just the `groups` mapping (same format), and
QLRF_NOTIFY_WEBHOOK a webhook URL; each wins over the config file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runner.errors import QlrfError
from runner.local.paths import config_path


def _load(path: Path) -> Any:
    from runner.dsl.loader import load_file

    doc = load_file(path)
    if doc.diagnostics:
        raise QlrfError("; ".join(d.text() for d in doc.diagnostics))
    return doc.data


def _config() -> dict[str, Any]:
    path = config_path()
    if not path.is_file():
        return {}
    data = _load(path)
    if not isinstance(data, dict):
        raise QlrfError(f"{path}: the configuration is a mapping (groups:, notify:)")
    return data


def groups() -> tuple[dict[str, list[str]], str]:
    """All groups and where they came from."""
    override = os.environ.get("QLRF_GROUPS_FILE")
    if override:
        data, source = _load(Path(override)), override
    else:
        data, source = _config().get("groups") or {}, str(config_path())
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(u, str) for u in v) for v in data.values()
    ):
        raise QlrfError(f"{source}: groups map a group name to a list of user names")
    return {str(k): list(v) for k, v in data.items()}, source


def resolve_groups(names: set[str]) -> dict[str, list[str]]:
    """Members of the named groups; QlrfError naming the file when one is not defined."""
    if not names:
        return {}
    known, source = groups()
    missing = sorted(names - set(known))
    if missing:
        raise QlrfError(
            f"approver group(s) {', '.join(missing)} are not defined in {source}; "
            "define them under `groups:` (see docs/approvals.md)"
        )
    return {name: known[name] for name in sorted(names)}


def notify_webhook() -> str | None:
    url = os.environ.get("QLRF_NOTIFY_WEBHOOK")
    if url:
        return url
    notify = _config().get("notify") or {}
    return notify.get("webhook") if isinstance(notify, dict) else None
