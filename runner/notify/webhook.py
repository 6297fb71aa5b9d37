"""Webhooks signed as the Standard Webhooks specification says (webhook-id,
webhook-timestamp, webhook-signature: v1,...), with the `standardwebhooks` package,
so that a receiver verifies them with its own copy of it. The webhook-id is the
delivery's idempotency key, the same on every attempt."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from standardwebhooks import Webhook

from runner.notify.failures import Refused
from runner.notify.http import post
from runner.notify.messages import Notice


def message_id(key: str) -> str:
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def signed_headers(secret: str, key: str, body: str) -> dict[str, str]:
    try:
        signer = Webhook(secret)
    except Exception as exc:  # not base64, empty
        raise Refused(
            f"the webhook key is not a Standard Webhooks key (whsec_...): {exc}"
        ) from None
    msg_id, now = message_id(key), datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body),
        "content-type": "application/json",
    }


async def send(url: str, secret: str, notice: Notice, key: str) -> str:
    body = json.dumps(notice.body(), sort_keys=True, ensure_ascii=False)
    response = await post(
        url, what="the webhook", content=body.encode(), headers=signed_headers(secret, key, body)
    )
    return f"{response.status_code}"
