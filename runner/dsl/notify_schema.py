"""The JSON Schema of QLRF_NOTIFY_CONFIG, published as schemas/notify-config.schema.json
(an editor completes the file with it; the worker and `serve` check it at start)."""

from __future__ import annotations

from typing import Any

from runner.contract.vocab import NotifyEvent

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
SECRET = r"^secret:[A-Za-z_][A-Za-z0-9_]*$"
EVENTS = [event.value for event in NotifyEvent]
KINDS = ["slack", "email", "webhook", "apprise"]

_SECRET = {
    "type": "string",
    "pattern": SECRET,
    "patternErrorMessage": "credentials are secret references: secret:NAME (never the value)",
}
_SECRET_OR_TEXT = {"type": "string", "minLength": 1}
_ADDRESS = {"type": "string", "minLength": 3, "description": "An e-mail address"}


def _channel(kind: str, description: str, required: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["kind", *required],
        "additionalProperties": False,
        "properties": {"kind": {"const": kind}, **props},
    }


CHANNELS: dict[str, dict[str, Any]] = {
    "slack": _channel(
        "slack",
        "Slack: chat.postMessage with Approve and Reject buttons",
        ["token", "channel"],
        token={**_SECRET, "description": "The bot token (xoxb-...): secret:NAME"},
        channel={"type": "string", "minLength": 1, "description": "#channel or its id"},
        signing_secret={
            **_SECRET,
            "description": "Slack's signing secret, which `serve` checks every click with",
        },
        users={
            "description": "Who a Slack user is: a map of Slack user id to principal, or "
            "lookup (the user's verified e-mail through users.info)",
            "oneOf": [
                {"type": "string", "const": "lookup"},
                {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[UW][A-Z0-9]{2,}$"},
                    "additionalProperties": {"type": "string", "minLength": 1},
                },
            ],
        },
        api_url={
            "type": "string",
            "pattern": r"^https?://",
            "description": "Slack's Web API (default https://slack.com/api)",
        },
    ),
    "email": _channel(
        "email",
        "E-mail over SMTP, text and HTML, with the review link",
        ["smtp", "from", "to"],
        smtp={
            "type": "string",
            "pattern": r"^[A-Za-z0-9.-]+:[0-9]{1,5}$",
            "patternErrorMessage": "give the SMTP server as host:port, e.g. smtp.example.com:587",
            "description": "host:port",
        },
        tls={"enum": ["starttls", "tls", "none"], "description": "default starttls"},
        **{"from": {**_ADDRESS, "description": "The sender's address"}},
        to={"type": "array", "minItems": 1, "items": _ADDRESS, "description": "Recipients"},
        username={"type": "string", "minLength": 1},
        password={**_SECRET, "description": "The SMTP password: secret:NAME"},
    ),
    "webhook": _channel(
        "webhook",
        "A JSON POST signed as Standard Webhooks says (webhook-id, -timestamp, -signature)",
        ["url", "key"],
        url={**_SECRET_OR_TEXT, "description": "https URL, or secret:NAME holding it"},
        key={**_SECRET, "description": "The signing key (whsec_...): secret:NAME"},
    ),
    "apprise": _channel(
        "apprise",
        "Any service apprise knows (Teams, PagerDuty, ntfy, Matrix, ...)",
        ["url"],
        url={**_SECRET_OR_TEXT, "description": "An apprise URL, or secret:NAME holding it"},
    ),
}

ROUTE: dict[str, Any] = {
    "type": "object",
    "description": "Which events go to which channels",
    "required": ["on", "to"],
    "additionalProperties": False,
    "properties": {
        "on": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": EVENTS},
            "description": "The events",
        },
        "to": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": NAME},
            "description": "Channel names (under channels: of the worker's QLRF_NOTIFY_CONFIG)",
        },
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://qlrf.dev/schemas/notify-config.schema.json",
    "title": "qlrf-run notification channels and routes (QLRF_NOTIFY_CONFIG)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "channels": {
            "type": "object",
            "description": "Named channels; credentials as secret:NAME",
            "propertyNames": {"pattern": NAME},
            "additionalProperties": {
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"enum": KINDS, "description": "What the channel is"}},
                "allOf": [
                    {"if": {"properties": {"kind": {"const": k}}}, "then": CHANNELS[k]}
                    for k in KINDS
                ],
            },
        },
        "routes": {"type": "array", "items": ROUTE, "description": "Events to channels"},
        "lock_notify_after": {
            "type": "string",
            "description": "lock_waiting is sent after a run waits this long (default 10m)",
        },
    },
}
