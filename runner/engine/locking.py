"""A run's side of `locks:`: render the keys, queue at each lock, hold, give back.

Keys are taken in sorted order, so two runs that want the same two keys queue in
the same order and cannot deadlock on each other. A lock is asked for through the
`lock_request` activity (signal-with-start of the key's qlrf.Lock workflow) and
answers by signal (`lock`): first whom the run waits behind, then the grant. A
key is given back by signalling the lock `release`; a run that closes without
doing so (terminated) is noticed by the lock, which watches its holder.

What the run waits for is part of its state, its live picture and the
`QlrfWaiting` search attribute (as `lock:KEY`), so `status`, `pending` and
`apply`'s progress all show `waiting for lock K (held by run R since T)`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from runner.contract import (
    LOCK_KEY_LIMIT,
    LOCK_RELEASE,
    LOCK_REQUEST_ACTIVITY,
    lock_workflow_id,
)
from runner.contract.state import LockHolderJson
from runner.contract.vocab import NotifyEvent
from runner.engine import render
from runner.engine.failures import StepFailed
from runner.engine.notices import Notices
from runner.engine.outbox import Outbox
from runner.engine.run_state import LockHold, RunState
from runner.trust import internal

REQUEST_TIMEOUT = timedelta(seconds=30)
# The server may be briefly away: ask again, for as long as it takes.
REQUEST_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0)
_HOLDER_TEXT = 300


def key_problem(key: str) -> str | None:
    """Why a rendered key cannot name a lock; None when it can."""
    if not key:
        return "renders empty; give every run a key, e.g. from a required input"
    if len(key) > LOCK_KEY_LIMIT:
        return f"is {len(key)} characters long, over the limit of {LOCK_KEY_LIMIT}"
    if not key.isprintable():
        return "holds a control character; lock keys are printable text"
    return None


class RunLocks:
    """The locks of one run; every change shows in the run's state at once."""

    def __init__(
        self, run: RunState, outbox: Outbox, published: Any, *, authenticated: bool = False
    ) -> None:
        self.run = run
        self.outbox = outbox
        self.published = published  # publishes the waiting gates and locks
        # Runs from START_ONCE on authenticate their locks' messages (runner/engine/lock.py).
        self.authenticated = authenticated
        self.notices: Notices | None = None  # runs from NOTIFY on: lock_waiting
        self._sent: list[asyncio.Task[None]] = []

    # -- keys ----------------------------------------------------------------------

    def keys(self, templates: Sequence[str], step: str | None) -> list[str]:
        """The rendered keys, sorted and each once; StepFailed when one cannot be a key."""
        context = self.run.context()
        scope = {"inputs": context["inputs"], "run": context["run"]}
        found: set[str] = set()
        for text in templates:
            where = f"lock {text!r}" + (f" of step '{step}'" if step else " of the run")
            try:
                key = str(render.render(text, scope)).strip()
            except render.TemplateFailure as exc:
                raise StepFailed("InvalidLockKey", f"{where}: {exc}", 1) from None
            problem = key_problem(key)
            if problem:
                raise StepFailed("InvalidLockKey", f"{where} {problem}", 1)
            if step is not None and key in self._run_keys():
                raise StepFailed(
                    "LockConflict",
                    f"{where}: the run itself holds lock {key}, and a step inside it cannot "
                    "take it again (it would wait for itself); drop the step's lock",
                    1,
                )
            found.add(key)
        return sorted(found)

    def _run_keys(self) -> set[str]:
        return {h.key for h in self.run.locks.values() if h.step is None}

    # -- taking and giving back ---------------------------------------------------

    async def take(self, keys: Sequence[str], step: str | None) -> None:
        """Hold every key, in order; on a cancel, what was asked for is given back."""
        try:
            for key in keys:
                await self._take(key, step)
        except GeneratorExit:
            raise  # evicted from the worker's cache: no workflow call is allowed now
        except BaseException:
            self.give_back(step)
            raise

    async def _take(self, key: str, step: str | None) -> None:
        info = workflow.info()
        hold = LockHold(key, str(workflow.uuid4()), step, "requesting", workflow.now())
        self.run.locks[hold.token] = hold
        self._changed(hold)
        await workflow.execute_activity(
            LOCK_REQUEST_ACTIVITY,
            {
                "key": key,
                "token": hold.token,
                "run": info.workflow_id,
                "temporal_run_id": info.run_id,
                "step": step,
            },
            start_to_close_timeout=REQUEST_TIMEOUT,
            retry_policy=REQUEST_RETRY,
            summary=f"lock {key}",
        )
        if hold.status == "requesting":
            hold.status = "waiting"
            self._changed(hold)
        notices = self.notices
        if notices is not None and notices.wants(NotifyEvent.LOCK_WAITING):
            try:
                await workflow.wait_condition(
                    lambda: hold.status == "held",
                    timeout=notices.lock_after,
                    timeout_summary=f"waiting for lock {key}: tell after a while",
                )
            except builtins.TimeoutError:
                notices.send(
                    NotifyEvent.LOCK_WAITING,
                    {
                        "name": self.run.plan.name,
                        "key": key,
                        "step": step,
                        "message": hold.waiting_text(),
                    },
                    about=f"lock:{key}:{hold.token[:8]}",
                )
        await workflow.wait_condition(
            lambda: hold.status == "held", timeout_summary=f"waiting for lock {key}"
        )
        self.outbox.audit("lock_acquired", None, {"key": key, "step": step})

    def give_back(self, step: str | None) -> None:
        """Release (or stop waiting for) every key held or asked for by `step`
        (None: the run's own)."""
        for hold in [h for h in self.run.locks.values() if h.step == step]:
            del self.run.locks[hold.token]
            self._release(hold.key, hold.token)
            if hold.status == "held":
                self.outbox.audit("lock_released", None, {"key": hold.key, "step": step})
            self._changed(hold, gone=True)

    def _release(self, key: str, token: str) -> None:
        lock = workflow.get_external_workflow_handle(lock_workflow_id(key))
        payload: dict[str, Any] = {"token": token}
        if self.authenticated:
            payload["mac"] = internal.mac("release", key, token)
        self._sent.append(asyncio.create_task(_signal(lock, payload)))

    async def settled(self) -> None:
        """Every release sent: a run closes only after it gave back what it held."""
        while self._sent:
            sent, self._sent = self._sent, []
            await asyncio.gather(*sent)

    # -- what the locks say -------------------------------------------------------

    def news(self, news: Any) -> None:
        """A lock's signal: queued behind a holder, or granted. Anything else is ignored."""
        if not isinstance(news, dict):
            return
        token, status = news.get("token"), news.get("status")
        if not isinstance(token, str):
            return
        hold = self.run.locks.get(token)
        if self.authenticated:
            key = hold.key if hold is not None else news.get("key")
            if not internal.valid(news.get("mac"), "news", key, token, status):
                return  # not from the lock: a grant read from history forges nothing
        if hold is None:
            key = news.get("key")
            if status == "granted" and isinstance(key, str) and not key_problem(key):
                # A grant for a request given up while it was on its way: pass it on.
                self._release(key, token)
            return
        if status == "granted" and hold.status != "held":
            hold.status = "held"
            hold.since = workflow.now()
            hold.holder = hold.position = None
        elif status == "waiting" and hold.status != "held":
            hold.status = "waiting"
            hold.holder = _holder(news.get("holder"))
            position = news.get("position")
            hold.position = position if isinstance(position, int) else None
        else:
            return
        self._changed(hold)

    def _changed(self, hold: LockHold, *, gone: bool = False) -> None:
        if hold.step is not None and hold.step in self.run.steps:
            state = self.run.steps[hold.step]
            if gone or hold.status == "held":
                if state.status == "waiting":
                    state.status, state.reason = "running", None
            else:
                state.status, state.reason = "waiting", hold.waiting_text()
        self.run.touch(urgent=True)
        self.published()


def _holder(found: Any) -> LockHolderJson | None:
    """The holder a lock names, kept to short text (the signal may come from anyone)."""
    if not isinstance(found, dict):
        return None

    def text(key: str) -> str | None:
        return str(found[key])[:_HOLDER_TEXT] if found.get(key) is not None else None

    return {"run": text("run"), "step": text("step"), "since": text("since")}


async def _signal(lock: Any, payload: dict[str, Any]) -> None:
    # The lock may have ended (nobody left to serve, or it was terminated): nothing to
    # give back then. A lock still waiting for this request drops it when it arrives.
    with contextlib.suppress(Exception):
        await lock.signal(LOCK_RELEASE, payload)
