"""Slack's Web API as qlrf-run uses it: a gate's message with Approve and Reject
buttons (chat.postMessage, Block Kit), the message updated after a click
(chat.update), a user's e-mail (users.info), and a private answer to one person
(the click's response_url). The API's base URL is the channel's `api_url`."""

from __future__ import annotations

import json
from typing import Any

from runner.notify.failures import Refused
from runner.notify.http import post
from runner.notify.messages import Notice

APPROVE, REJECT, REVIEW = "qlrf_approve", "qlrf_reject", "qlrf_review"
FIELDS_LIMIT = 10  # Slack's limit for a section's fields


def escaped(text: str) -> str:
    """Text for mrkdwn: `<`, `>` and `&` are Slack's markup (links, @channel)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def button_value(notice: Notice) -> str:
    return json.dumps(
        {"run": notice.run, "gate": notice.gate, "round": int(notice.data.get("round") or 0)},
        separators=(",", ":"),
    )


def blocks(notice: Notice, *, decided: str | None = None) -> list[dict[str, Any]]:
    """The message: title and message, the facts, the review link and the buttons
    (no buttons once `decided` says what became of the gate)."""
    text = f"*{escaped(notice.title())}*"
    if notice.message():
        text += "\n" + escaped(notice.message())
    found: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    facts = [
        {"type": "mrkdwn", "text": f"*{escaped(label)}*\n{escaped(value)}"}
        for label, value in notice.facts()
        if value
    ][:FIELDS_LIMIT]
    if facts:
        found.append({"type": "section", "fields": facts})
    if decided:
        found.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escaped(decided)}]}
        )
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": REVIEW,
            "text": {"type": "plain_text", "text": "Review"},
            "url": notice.link(),
        }
    ]
    if notice.actionable and decided is None:
        value = button_value(notice)
        elements += [
            {
                "type": "button",
                "action_id": APPROVE,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
            },
            {
                "type": "button",
                "action_id": REJECT,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
                "value": value,
            },
        ]
    found.append({"type": "actions", "block_id": "qlrf_gate", "elements": elements})
    return found


async def call(api_url: str, token: str, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One Web API method; Refused with Slack's error when it answers ok: false."""
    response = await post(
        f"{api_url.rstrip('/')}/{method}",
        what=f"Slack's {method}",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        answer = response.json()
    except ValueError:
        raise Refused(f"Slack's {method} answered with no JSON") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise Refused(f"Slack's {method} answered ok: false ({error or 'no error given'})")
    return answer


async def send(
    api_url: str, token: str, channel: str, notice: Notice
) -> tuple[str, dict[str, Any]]:
    answer = await call(
        api_url,
        token,
        "chat.postMessage",
        {"channel": channel, "text": notice.title(), "blocks": blocks(notice)},
    )
    where = {"channel": answer.get("channel"), "ts": answer.get("ts")}
    return f"ok (channel {where['channel']}, ts {where['ts']})", where


async def user_email(api_url: str, token: str, user: str) -> str | None:
    """The user's e-mail, as users.info gives it (None without one)."""
    answer = await call(api_url, token, "users.info", {"user": user})
    profile = (answer.get("user") or {}).get("profile") or {}
    email = profile.get("email")
    return str(email) if isinstance(email, str) and email else None


async def answer_privately(response_url: str, text: str) -> None:
    """A message only the person who clicked sees (Slack's response_url)."""
    await post(
        response_url,
        what="Slack's response_url",
        json={"response_type": "ephemeral", "replace_original": False, "text": text},
    )
