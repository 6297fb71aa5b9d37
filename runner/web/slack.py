"""`/integrations/slack/actions`: a click on a gate's Approve or Reject in Slack.

Slack signs each request with the channel's signing secret; the signature is checked
with slack_sdk's SignatureVerifier (a 5-minute window) before anything else is read,
and a forged, stale or unsigned request gets 401 and changes nothing. The Slack user
becomes a principal through the channel's `users:` (a map, or `lookup`: the e-mail
users.info gives), and the service vouches for the decision exactly as for the web
page; the run checks it as any other. The message is then updated (chat.update) with
who decided and the quorum; a refusal is said to that person only, with the run's
reason.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import Response

from runner.contract.vocab import DecisionKind, NotifyEvent
from runner.errors import QlrfError
from runner.notify import slack
from runner.notify.config import DEFAULT_SLACK_API, Channel, NotifyConfig
from runner.notify.deliver import setting_of
from runner.notify.failures import Refused, Uncertain, Unreachable
from runner.notify.messages import Notice
from runner.steps.secrets import Resolver
from runner.web.actions import RateLimited, decide_as
from runner.web.problems import problem
from runner.web.service import Service
from runner.web.vouch import Person

log = logging.getLogger("qlrf.web.slack")
BODY_LIMIT = 64 * 1024
NAME_LIMIT = 400
ACTIONS = {slack.APPROVE: DecisionKind.APPROVE, slack.REJECT: DecisionKind.REJECT}
SLACK_FAILURES = (Refused, Unreachable, Uncertain)


@dataclass(frozen=True)
class Click:
    channel: Channel
    team: str
    user: str
    kind: DecisionKind
    run: str
    gate: str
    round: int
    response_url: str | None
    message_channel: str | None
    message_ts: str | None


async def _secret(channel: Channel, key: str) -> str | None:
    return await setting_of(channel, key, Resolver())


async def _signed_by(config: NotifyConfig, request: Request, body: bytes) -> Channel | None:
    """The Slack channel whose signing secret signed this request, if any."""
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isascii() or not timestamp.isdigit() or not signature:
        return None  # slack_sdk's verifier would fail on a timestamp that is no number
    for channel in config.slack_channels():
        secret = await _secret(channel, "signing_secret")
        if secret and SignatureVerifier(secret).is_valid(body, timestamp, signature):
            return channel
    return None


def _click(channel: Channel, body: bytes) -> Click | str:
    """The click the payload describes, or why it is none qlrf-run acts on."""
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
        action = payload["actions"][0]
        value = json.loads(action["value"])
        kind = ACTIONS[action["action_id"]]
        run, gate, round_ = value["run"], value["gate"], value["round"]
        user = payload["user"]["id"]
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        return "not a qlrf-run button"
    texts = (run, gate, user)
    if not all(isinstance(t, str) and 0 < len(t) <= NAME_LIMIT for t in texts) or not (
        isinstance(round_, int) and not isinstance(round_, bool) and round_ >= 0
    ):
        return "not a qlrf-run button"
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    response_url = payload.get("response_url")
    return Click(
        channel,
        str(team.get("id") or ""),
        user,
        kind,
        run,
        gate,
        round_,
        response_url if isinstance(response_url, str) else None,
        str(container["channel_id"]) if container.get("channel_id") else None,
        str(container["message_ts"]) if container.get("message_ts") else None,
    )


async def _principal(click: Click, token: str | None) -> str | None:
    users = click.channel.settings.get("users")
    if isinstance(users, dict):
        found = users.get(click.user)
        return str(found) if found else None
    if users == "lookup" and token:
        return await slack.user_email(_api(click.channel), token, click.user)
    return None


def _api(channel: Channel) -> str:
    return str(channel.settings.get("api_url") or DEFAULT_SLACK_API)


async def actions(service: Service, request: Request) -> Response:
    config = service.notify
    if config is None or not config.slack_channels():
        return problem(404, "this service has no Slack channel (QLRF_NOTIFY_CONFIG)")
    body = await request.body()
    if len(body) > BODY_LIMIT:
        return problem(413, "the request is too large")
    channel = await _signed_by(config, request, body)
    if channel is None:
        return problem(401, "not signed by Slack: no valid X-Slack-Signature within 5 minutes")
    click = _click(channel, body)
    if isinstance(click, str):
        return Response(status_code=200)  # another app's button: nothing to do
    token = await _secret(channel, "token")
    try:
        principal = await _principal(click, token)
    except SLACK_FAILURES as exc:
        await _privately(click, f"qlrf-run could not ask Slack who you are: {exc}")
        return Response(status_code=200)
    if principal is None:
        await _privately(
            click,
            f"Your Slack user {click.user} is not anyone qlrf-run knows, so it cannot act "
            "for you: ask the operators to map it under users: of the Slack channel, or "
            "decide on the review page.",
        )
        return Response(status_code=200)
    person = Person(
        principal,
        verified=True,
        issuer=f"slack:{click.team}" if click.team else "slack",
        subject=click.user,
        how="slack",
        service="slack",
    )
    try:
        _, done = await decide_as(
            service, person, click.run, click.gate, click.kind, round_=click.round
        )
    except RateLimited:
        await _privately(click, "Too many decisions in a minute; try again in a moment.")
        return Response(status_code=200)
    except QlrfError as exc:
        await _privately(click, f"qlrf-run could not decide: {exc}")
        return Response(status_code=200)
    if done.refused is not None:
        await _privately(click, f"Refused: {done.refused}")
        return Response(status_code=200)
    await _update(click, token, done.gate.to_json(), principal)
    return Response(status_code=200)


async def _privately(click: Click, text: str) -> None:
    if click.response_url is None:
        return
    try:
        await slack.answer_privately(click.response_url, text)
    except SLACK_FAILURES as exc:
        log.warning("could not answer %s privately: %s", click.user, exc)


async def _update(click: Click, token: str | None, gate: dict[str, Any], by: str) -> None:
    """The message again, saying who decided and the quorum (buttons while it waits)."""
    if token is None or click.message_channel is None or click.message_ts is None:
        return
    waiting = gate.get("status") == "waiting"
    approvals = gate.get("approvals") or []
    notice = Notice(
        str(NotifyEvent.GATE_WAITING if waiting else NotifyEvent.GATE_DECIDED),
        click.run,
        {
            "gate": click.gate,
            "round": click.round,
            "message": gate.get("message"),
            "approvers": gate.get("approvers") or [],
            "min_approvals": gate.get("min_approvals") or 1,
            "approvals": len(approvals),
            "deadline": gate.get("deadline"),
            "status": gate.get("status"),
        },
    )
    verb = "approved" if click.kind == DecisionKind.APPROVE else "rejected"
    said = f"{by} {verb} ({notice.quorum()}); the gate is {gate.get('status')}"
    try:
        await slack.call(
            _api(click.channel),
            token,
            "chat.update",
            {
                "channel": click.message_channel,
                "ts": click.message_ts,
                "text": notice.title(),
                "blocks": slack.blocks(notice, decided=None if waiting else said)
                + ([_context(said)] if waiting else []),
            },
        )
    except SLACK_FAILURES as exc:
        log.warning("could not update the Slack message of %s/%s: %s", click.run, click.gate, exc)


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": slack.escaped(text)}]}
