"""Notifications on real parts: a `qlrf-run worker` in signed mode with channels of
every kind, `qlrf-run serve` answering Slack's clicks, a local HTTP server playing
Slack's Web API and receiving webhooks and apprise's posts, and aiosmtpd receiving
the mail. Clicks are posted to `serve` as Slack posts them (form-encoded `payload`,
X-Slack-Signature, X-Slack-Request-Timestamp), with the buttons' action_id and value
taken from the message the worker posted."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook
from temporalio.client import Client

from tests.helpers.cli import detached, qlrf, worker_process
from tests.helpers.receivers import Mailbox, Receiver, http_receiver, smtp_receiver
from tests.helpers.waiting import eventually
from tests.helpers.web import Served, keygen, public

SLACK_TOKEN = "xoxb-" + "7" * 24
SIGNING_SECRET = "slack-signing-" + "s" * 20
HOOK_KEY = "whsec_" + "aG9va3NlY3JldGhvb2tzZWNyZXQxMjM0NTY3OA=="
SMTP_PASSWORD = "smtp-" + "p" * 16
INTERNAL_KEY = "notify-internal-key-" + "n" * 32

GATED = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: review
    type: approval
    with:
      message: "restart the <b>payments</b> API? <!channel>"
      approvers: [bob@example.com]
      timeout: 10m
      remind: [2s]
      escalate: {{after: 3s, to: [carol@example.com]}}
  - id: done
    needs: [review]
    type: assert
    with: {{that: "{{{{ true }}}}"}}
"""

FAILING = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: broken
    type: shell
    retry: {{max_attempts: 1}}
    with: {{command: ["false"]}}
"""


def _config(receiver: Receiver, mailbox: Mailbox, hook: str = "/hook") -> str:
    return f"""\
channels:
  ops-slack:
    kind: slack
    token: secret:slack_bot_token
    channel: "#ops-approvals"
    signing_secret: secret:slack_signing_secret
    users: {{U0BOB: bob@example.com}}
    api_url: {receiver.url}/slack/api
  lost-slack:
    kind: slack
    token: secret:slack_bot_token
    channel: "#nowhere"
    api_url: {receiver.url}/slack/api
  cab-email:
    kind: email
    smtp: 127.0.0.1:{mailbox.port}
    tls: none
    from: qlrf@example.com
    to: [cab@example.com]
    username: qlrf
    password: secret:smtp_password
  audit-hook: {{kind: webhook, url: "{receiver.url}{hook}", key: secret:hook_key}}
  pager: {{kind: apprise, url: "json://127.0.0.1:{receiver.url.rsplit(":", 1)[1]}/apprise"}}
routes:
  - {{on: [gate_waiting, gate_reminder, gate_escalated], to: [ops-slack, cab-email]}}
  - {{on: [gate_waiting], to: [lost-slack]}}
  - {{on: [run_failed], to: [audit-hook, pager]}}
"""


SECRETS = {
    "QLRF_SECRET_slack_bot_token": SLACK_TOKEN,
    "QLRF_SECRET_slack_signing_secret": SIGNING_SECRET,
    "QLRF_SECRET_hook_key": HOOK_KEY,
    "QLRF_SECRET_smtp_password": SMTP_PASSWORD,
}


@pytest.fixture(scope="module")
def stack(
    temporal_address: str, postgres_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("notify")
    keys = {n: keygen(folder, n) for n in ("vouch", "alice")}
    trust = folder / "allowed_signers"
    trust.write_text(
        f'alice@example.com namespaces="qlrf" {public(keys["alice"])}\n'
        f'*@example.com namespaces="qlrf-vouch" {public(keys["vouch"])} qlrf-web\n'
    )
    with http_receiver() as receiver, smtp_receiver(SMTP_PASSWORD) as mailbox:
        config = folder / "notify.yaml"
        config.write_text(_config(receiver, mailbox))
        env = {
            "QLRF_TEMPORAL_ADDRESS": temporal_address,
            "QLRF_DATABASE_URL": postgres_uri,
            "QLRF_TASK_QUEUE": f"notify-{uuid.uuid4().hex[:8]}",
            "QLRF_ALLOWED_SIGNERS": str(trust),
            "QLRF_INTERNAL_KEY": INTERNAL_KEY,
            "QLRF_NOTIFY_CONFIG": str(config),
            "QLRF_WEB_PUBLIC_URL": "https://qlrf.example.com",
            **SECRETS,
        }
        worker = worker_process(env)
        web_env = {
            **env,
            "QLRF_WEB_SESSION_KEY": "s" * 40,
            "QLRF_WEB_VOUCH_KEY": str(keys["vouch"]),
        }
        web_env.pop("QLRF_ALLOWED_SIGNERS")
        served = Served(web_env, folder / "serve.log")
        try:
            yield {
                "env": env,
                "keys": keys,
                "folder": folder,
                "receiver": receiver,
                "mailbox": mailbox,
                "web": served,
                "trust": trust,
            }
        finally:
            served.stop()
            worker.terminate()
            worker.wait(20)


def start(stack: dict[str, Any], text: str, env: dict[str, str] | None = None) -> str:
    name = f"n-{uuid.uuid4().hex[:6]}"
    path = stack["folder"] / f"{name}.yaml"
    path.write_text(text.format(name=name))
    signed = {**(env or stack["env"]), "QLRF_SIGNING_KEY": str(stack["keys"]["alice"])}
    return detached(path, signed)


def status(stack: dict[str, Any], run: str) -> dict[str, Any]:
    found = qlrf("status", run, "--format", "json", env=stack["env"])
    assert found.returncode == 0, found.stderr
    return dict(json.loads(found.stdout))


def posted(receiver: Receiver, run: str, title: str) -> list[dict[str, Any]]:
    found = []
    for got in receiver.at("/slack/api/chat.postMessage"):
        body = got.json()
        if run in body["text"] and title in body["text"] and body["channel"] != "#nowhere":
            found.append({**body, "headers": got.headers})
    return found


def click(
    stack: dict[str, Any],
    message: dict[str, Any],
    action: str,
    *,
    user: str = "U0BOB",
    secret: str = SIGNING_SECRET,
    age: int = 0,
    signed: bool = True,
) -> httpx.Response:
    """Post the button's click to serve as Slack does."""
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    (button,) = [e for e in actions["elements"] if e["action_id"] == action]
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T0QLRF"},
        "container": {"type": "message", "channel_id": "C0OPS", "message_ts": "1.0001"},
        "response_url": f"{stack['receiver'].url}/response/{user}",
        "actions": [{"type": "button", "action_id": button["action_id"], "value": button["value"]}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()) - age)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signed:
        headers["x-slack-request-timestamp"] = timestamp
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        headers["x-slack-signature"] = str(signature)
    return httpx.post(
        stack["web"].url + "/integrations/slack/actions", content=body, headers=headers, timeout=30
    )


def test_a_gate_reaches_slack_and_email_is_reminded_escalated_and_approved_by_a_click(stack):
    receiver, mailbox = stack["receiver"], stack["mailbox"]
    run = start(stack, GATED)
    eventually(lambda: posted(receiver, run, "waits for approval"), "the gate's Slack message", 60)
    (message,) = posted(receiver, run, "waits for approval")
    assert message["headers"]["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert message["channel"] == "#ops-approvals"
    shown = json.dumps(message["blocks"])
    review = f"https://qlrf.example.com/runs/{run}/gates/review"
    assert review in shown and "1 of 1" not in shown and "0 of 1" in shown
    # Hostile text stays text: Slack's markup is escaped.
    assert "&lt;b&gt;payments&lt;/b&gt;" in shown and "&lt;!channel&gt;" in shown
    ids = [
        e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert ids == ["qlrf_review", "qlrf_approve", "qlrf_reject"]

    # The e-mail: text and HTML with the review link, and no link that decides.
    def mail(title: str) -> list[Any]:
        return [m for m in mailbox.mails if run in m["Subject"] and title in m["Subject"]]

    eventually(lambda: mail("waits for approval"), "the gate's e-mail", 30)
    (first,) = mail("waits for approval")
    text = first.get_body(("plain",)).get_content()
    html = first.get_body(("html",)).get_content()
    assert review in text and f'href="{review}"' in html
    assert mailbox.logins[-1] == "qlrf"
    links = [w for w in (text + html).replace('"', " ").split() if "://" in w]
    assert links and all(link.rstrip("<>") in (review,) or "review" in link for link in links)
    assert "decision" not in text + html

    # The reminder (2s) and the escalation (3s) are durable timers of the run.
    eventually(lambda: posted(receiver, run, "reminder"), "the reminder", 30)
    eventually(lambda: mail("reminder"), "the reminder's e-mail", 30)
    eventually(lambda: posted(receiver, run, "escalated"), "the escalation", 30)
    (gate,) = status(stack, run)["gates"]
    assert gate["approvers"] == ["bob@example.com", "carol@example.com"]
    (escalated,) = posted(receiver, run, "escalated")
    assert "carol@example.com" in json.dumps(escalated["blocks"])

    # Forged, stale and unsigned clicks get 401; an unknown Slack user is told privately.
    assert click(stack, message, "qlrf_approve", secret="not-the-secret").status_code == 401
    assert click(stack, message, "qlrf_approve", age=600).status_code == 401
    assert click(stack, message, "qlrf_approve", signed=False).status_code == 401
    odd = httpx.post(
        stack["web"].url + "/integrations/slack/actions",
        content="payload=%7B%7D",
        headers={"x-slack-request-timestamp": "1e9", "x-slack-signature": "v0=00"},
        timeout=30,
    )
    assert odd.status_code == 401
    assert click(stack, message, "qlrf_approve", user="U0MALLORY").status_code == 200
    (private,) = receiver.at("/response/U0MALLORY")
    assert private.json()["response_type"] == "ephemeral"
    assert "U0MALLORY is not anyone qlrf-run knows" in private.json()["text"]
    assert status(stack, run)["status"] == "running"
    assert status(stack, run)["gates"][0]["approvals"] == []

    # Bob's click approves as bob@example.com, vouched for by the service.
    answer = click(stack, message, "qlrf_approve")
    assert answer.status_code == 200, stack["web"].said()
    eventually(lambda: status(stack, run)["status"] == "succeeded", "the run succeeding", 60)
    (approval,) = status(stack, run)["gates"][0]["approvals"]
    assert approval["by"] == "bob@example.com" and approval["verified"] is True
    assert approval["via"]["service"] == "slack" and approval["via"]["subject"] == "U0BOB"
    (update,) = receiver.at("/slack/api/chat.update")
    updated = update.json()
    assert updated["ts"] == "1.0001" and updated["channel"] == "C0OPS"
    assert "bob@example.com approved (1 of 1)" in json.dumps(updated["blocks"])
    assert "qlrf_approve" not in json.dumps(updated["blocks"])

    # Slack's ok: false is recorded with Slack's error, in the audit trail.
    audit = qlrf("history", run, "--format", "json", env=stack["env"])
    assert audit.returncode == 0, audit.stderr
    assert "channel_not_found" in audit.stdout and "notification_failed" in audit.stdout
    assert "notification_sent" in audit.stdout

    # No token, password or signing secret in the run's history or the store.
    history = asyncio.run(_temporal_history(stack["env"]["QLRF_TEMPORAL_ADDRESS"], run))
    evidence = qlrf("evidence", run, env=stack["env"])
    assert evidence.returncode == 0 and "notification_sent" in evidence.stdout, evidence.stderr
    assert "bob@example.com" in history
    for text_ in (audit.stdout, history, evidence.stdout, stack["web"].said()):
        for secret in (SLACK_TOKEN, SIGNING_SECRET, SMTP_PASSWORD, HOOK_KEY.removeprefix("whsec_")):
            assert secret not in text_


async def _temporal_history(address: str, run: str) -> str:
    """The run's Temporal history as text, every payload decoded."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(run).fetch_history()
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "data" and isinstance(inner, str):
                    found.append(base64.b64decode(inner).decode("utf-8", "replace"))
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(json.loads(history.to_json()))
    return "\n".join(found)


def test_a_failed_run_sends_a_signed_webhook_and_reaches_apprise(stack):
    receiver = stack["receiver"]
    run = start(stack, FAILING)
    eventually(lambda: status(stack, run)["status"] == "failed", "the run failing", 60)
    hooks = [r for r in receiver.at("/hook") if run in r.body.decode()]
    assert len(hooks) == 1
    (hook,) = hooks
    verified = Webhook(HOOK_KEY).verify(hook.body, hook.headers)
    assert verified["type"] == "run_failed" and verified["run"] == run
    assert verified["data"]["error"]["type"] == "CommandFailed"
    assert hook.headers["webhook-id"].startswith("msg_")
    pages = [r for r in receiver.at("/apprise") if run in r.body.decode()]
    assert len(pages) == 1 and "failed" in pages[0].json()["title"]


def test_notify_test_says_what_the_far_end_answered(stack):
    done = qlrf("notify", "test", "ops-slack", env=stack["env"])
    assert done.returncode == 0, done.stderr
    assert "ops-slack (slack): delivered; the far end answered: ok (channel C0OPS" in done.stdout
    lost = qlrf("notify", "test", "lost-slack", env=stack["env"])
    assert lost.returncode == 1 and "ok: false (channel_not_found)" in lost.stderr
    unknown = qlrf("notify", "test", "ops-slak", env=stack["env"])
    assert unknown.returncode != 0 and "did you mean 'ops-slack'" in unknown.stderr


def test_a_worker_killed_during_a_delivery_sends_it_once(stack):
    receiver, mailbox = stack["receiver"], stack["mailbox"]
    config = stack["folder"] / "slow.yaml"
    config.write_text(_config(receiver, mailbox, hook="/slow"))
    env = {**stack["env"], "QLRF_NOTIFY_CONFIG": str(config)}
    env["QLRF_TASK_QUEUE"] = f"notify-kill-{uuid.uuid4().hex[:8]}"
    held = receiver.held.setdefault("/slow", threading.Event())
    worker = worker_process(env)
    try:
        run = start(stack, FAILING, env)

        def arrived() -> list[Any]:
            return [r for r in receiver.at("/slow") if run in r.body.decode()]

        eventually(arrived, "the webhook reaching its receiver", 60)
        worker.kill()  # in the middle of the delivery: the receiver has it, unanswered
        worker.wait(20)
    finally:
        if worker.poll() is None:
            worker.kill()
    held.set()
    again = worker_process(env)
    try:

        def recorded() -> str | None:
            audit = qlrf("history", run, "--format", "json", env=stack["env"]).stdout
            return audit if '"run_finished"' in audit else None

        # The run closes once its last delivery has ended: the one retried here.
        audit = eventually(recorded, "the run closing", 90)
    finally:
        again.terminate()
        again.wait(20)
    assert len(arrived()) == 1
    assert "not sent again, so that nobody gets it twice" in audit
