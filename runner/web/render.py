"""Pages rendered on the server: Jinja2 with autoescape on, and every text a run
produced shown with its terminal escapes made visible, as the CLI shows them."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from runner.terminal import visible
from runner.times import parse


def _visible(value: Any) -> str:
    if value is None:
        return ""
    return visible(value if isinstance(value, str) else json.dumps(value, default=str))


def _pretty(value: Any) -> str:
    """A JSON value as indented text, escapes visible (autoescape does the HTML)."""
    if isinstance(value, str):
        return visible(value)
    return visible(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _when(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = parse(value)
    except ValueError:
        return visible(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _took(started: Any, finished: Any) -> str:
    try:
        a, b = parse(str(started)), parse(str(finished))
    except ValueError:
        return ""
    if not a or not b:
        return ""
    seconds = (b - a).total_seconds()
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def how(record: Any) -> str:
    """How a decision's person was known: `ssh key`, `web (issuer)`, a certificate."""
    if not isinstance(record, dict) or not record.get("verified"):
        return "unverified (a name as given)"
    via = record.get("via")
    if isinstance(via, dict) and via.get("service"):
        issuer = via.get("issuer")
        return f"{via['service']} ({issuer})" if issuer else str(via["service"])
    if isinstance(via, dict) and via.get("certificate") is not None:
        return f"ssh certificate ({via['certificate']})"
    return "ssh key"


def environment() -> Environment:
    folder = resources.files("runner.web") / "templates"
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(["html", "xml", "svg"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["visible"] = _visible
    env.filters["pretty"] = _pretty
    env.filters["when"] = _when
    env.filters["how"] = how
    env.globals["took"] = _took
    env.globals["now"] = datetime.now
    return env
