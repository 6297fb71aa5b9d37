"""The notify_deliver activity: one event of one run to one channel, sent once.

The run names the event and the channel; the channel's settings and credentials are
the worker's (QLRF_NOTIFY_CONFIG), so no token reaches history. Before anything is
sent, the delivery's idempotency key (run, event, gate, round, channel) is claimed
in the run store: a retry after a failure that reached nobody sends again, a key
already sent is not sent again, and a claim a stopped worker left in the middle is
never sent again either (the far end may have it). Whatever happens the answer is a
result the run records in its audit trail; only a far end that could not be reached
raises, so that Temporal tries again with back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.contract import NOTIFY_DELIVER_ACTIVITY
from runner.notify.config import DEFAULT_SLACK_API, Channel, NotifyConfig
from runner.notify.failures import Refused, Uncertain, Unreachable
from runner.notify.messages import Notice
from runner.steps.secrets import Resolver, SecretFailure

log = logging.getLogger("qlrf.notify")
DELIVERIES = "qlrf_notifications"
UNREACHABLE = "NotifyUnreachable"
# Without a run store (QLRF_STORE=off), keys are kept in this process only.
_LOCAL: dict[str, str] = {}


def deliverer(config: Callable[[], NotifyConfig | None]) -> Callable[..., Any]:
    """The activity, over the configuration the worker read at its start."""

    @activity.defn(name=NOTIFY_DELIVER_ACTIVITY)
    async def notify_deliver(request: dict[str, Any]) -> dict[str, Any]:
        # Beats while it waits for the far end, so that a worker that died mid-way is
        # noticed within the heartbeat timeout, not the whole attempt's.
        beating = asyncio.create_task(_beat())
        try:
            return await deliver(config(), request, activity.info().attempt)
        finally:
            beating.cancel()

    return notify_deliver


async def deliver(
    config: NotifyConfig | None, request: dict[str, Any], attempt: int
) -> dict[str, Any]:
    notice, name, key = Notice.of(request), str(request["channel"]), str(request["key"])
    channel = config.channels.get(name) if config is not None else None
    if channel is None:
        _count(name, notice.event, "refused")
        return _failed(f"no channel '{name}' in this worker's QLRF_NOTIFY_CONFIG")
    held = await _claim(key, notice.run, name, notice.event, attempt)
    if held == "sent":
        return {"status": "sent", "answer": "sent before: this delivery's key was sent already"}
    if held is not None:
        _count(name, notice.event, "uncertain")
        return _failed(
            "a worker stopped in the middle of this delivery; it is not sent again, so "
            "that nobody gets it twice"
        )
    secrets = Resolver()
    try:
        answer, where = await send_to(channel, notice, key, secrets)
    except Refused as exc:
        await _finish(key, "failed", str(exc))
        _count(name, notice.event, "refused")
        return _failed(str(secrets.mask(str(exc))))
    except Uncertain as exc:
        await _finish(key, "uncertain", str(exc))
        _count(name, notice.event, "uncertain")
        return _failed(str(secrets.mask(f"{exc}; not sent again, so that nobody gets it twice")))
    except Unreachable as exc:
        await _finish(key, "failed", str(exc))
        _count(name, notice.event, "retried")
        raise ApplicationError(str(secrets.mask(str(exc))), type=UNREACHABLE) from None
    except SecretFailure as exc:  # the vault: down (try again), or refusing
        await _finish(key, "failed", str(exc))
        if exc.retry:
            _count(name, notice.event, "retried")
            raise ApplicationError(str(exc), type=UNREACHABLE) from None
        _count(name, notice.event, "refused")
        return _failed(str(exc))
    except ApplicationError as exc:  # a secret that cannot be had now
        await _finish(key, "failed", exc.message)
        _count(name, notice.event, "refused")
        return _failed(str(secrets.mask(exc.message)))
    await _finish(key, "sent", answer)
    _count(name, notice.event, "sent")
    found: dict[str, Any] = {"status": "sent", "answer": str(secrets.mask(answer))}
    if where:
        found["slack"] = where
    return found


async def _beat() -> None:
    # Not at once: most deliveries end within the second, and a beat is a call to the
    # server.
    while True:
        await asyncio.sleep(1.0)
        activity.heartbeat()


def _failed(reason: str) -> dict[str, Any]:
    return {"status": "failed", "reason": reason}


async def setting_of(channel: Channel, key: str, secrets: Resolver) -> str | None:
    """A channel's setting: a `secret:NAME` read as every secret is (and masked from then
    on), else the text written."""
    name = channel.secret_name(key)
    if name is not None:
        return await secrets.fetch(name)
    value = channel.settings.get(key)
    return str(value) if value is not None else None


async def send_to(
    channel: Channel, notice: Notice, key: str, secrets: Resolver
) -> tuple[str, dict[str, Any] | None]:
    async def secret(setting: str) -> str | None:
        return await setting_of(channel, setting, secrets)

    # The channels' libraries are imported when a delivery needs them: every process
    # that builds a worker (each `apply`) would pay for them otherwise.
    from runner.notify import apprise_urls, mail, slack, webhook

    kind, settings = channel.kind, channel.settings
    if kind == "slack":
        token = await secret("token")
        assert token is not None  # the schema requires it
        api = str(settings.get("api_url") or DEFAULT_SLACK_API)
        answer, where = await slack.send(api, token, str(settings["channel"]), notice)
        return answer, where
    if kind == "email":
        return await mail.send(settings, await secret("password"), notice, key), None
    if kind == "webhook":
        url, signing = await secret("url"), await secret("key")
        assert url is not None and signing is not None
        return await webhook.send(url, signing, notice, key), None
    if kind == "apprise":
        url = await secret("url")
        assert url is not None
        return await apprise_urls.send(url, notice), None
    raise Refused(f"channel kind {kind!r} is not one this worker knows")


async def _claim(key: str, run: str, channel: str, event: str, attempt: int) -> str | None:
    from runner.local.postgres import store_enabled

    if not store_enabled():
        held = _LOCAL.get(key)
        if held is None or held == "failed":
            _LOCAL[key] = "sending"
            return None
        return held
    from runner.store.activity import pool
    from runner.store.records import claim_delivery

    try:
        return await claim_delivery(await pool(), key, run, channel, event, attempt)
    except Exception as exc:  # the store is down: try again later, nothing was sent
        raise ApplicationError(
            f"the run store cannot record the delivery yet: {type(exc).__name__}", type=UNREACHABLE
        ) from None


async def _finish(key: str, status: str, answer: str) -> None:
    from runner.local.postgres import store_enabled

    if not store_enabled():
        _LOCAL[key] = status
        return
    from runner.store.activity import pool
    from runner.store.records import finish_delivery

    for pause in (0.0, 0.5, 2.0):  # the store blinked: the claim stays `sending` otherwise
        await asyncio.sleep(pause)
        try:
            await finish_delivery(await pool(), key, status, answer)
            return
        except Exception as exc:
            log.warning("cannot mark delivery %s %s: %s", key, status, type(exc).__name__)


def _count(channel: str, event: str, outcome: str) -> None:
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # outside an activity (`qlrf-run notify test`)
        return
    meter.create_counter(
        DELIVERIES, "Notifications by channel, event and outcome"
    ).with_additional_attributes({"channel": channel, "event": event, "outcome": outcome}).add(1)
