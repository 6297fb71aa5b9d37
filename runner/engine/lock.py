"""qlrf.Lock: one workflow per lock key, the mutex of `locks:` (docs/locks.md).

A run asks for a key by signal-with-start (the `lock_request` activity), so the
workflow exists exactly while someone holds or waits for the key, and ends when
the last holder leaves. Waiters are served first come, first served. The holder
is told by a signal (`lock`); so are the waiters, each time the holder changes,
so that they can say whom they wait for.

A holder gives the key back by signalling `release`. One that can no longer do so
(terminated, or its worker gone for good) is watched: the `lock_watch` activity
returns when the holder's run has closed, however it closed, and the key passes
on. A grant to a run that has already closed fails, and the next waiter is served.

Signals are checked: anything not shaped as a request is ignored, a request seen
before (an activity retried) is queued once, and a release for a request still
on its way is remembered so that the late request is dropped.

Locks started from this version on (LOCK_MAC) authenticate every message with the
workers' key (runner/trust/internal.py): an acquire made by the `lock_request`
activity, a release made by its holder, and the news they send waiters, each over
the lock's key and the request's token. A token read from history forges nothing.
And a holder whose run closed without giving the key back (terminated) hands it on
only FENCE later: the time its steps take to learn of it and stop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from runner.contract import (
    ACQUIRE_FIELDS,
    LOCK_ACQUIRE,
    LOCK_ID_PREFIX,
    LOCK_MEMO,
    LOCK_NEWS,
    LOCK_RELEASE,
    LOCK_WATCH_ACTIVITY,
    LOCK_WORKFLOW_TYPE,
    LockInput,
)
from runner.contract.wire import LockHolder, LockNews, LockPicture, LockRequest
from runner.times import iso
from runner.trust import internal

LOCK_MAC = "qlrf-lock-mac"
# A terminated holder's steps learn of it at their next heartbeat (at most 5 s apart,
# runner/worker.py), and stop within their kill grace (5 s, runner/steps/shell.py).
FENCE = timedelta(seconds=15)

# The watcher returns after this long with the holder still running, and is started
# again: no activity runs for ever, and a continue-as-new can come in between.
WATCH_SECONDS = 3600
WATCH_HEARTBEAT = timedelta(seconds=30)
# Waiters told of a new holder; those further back hear when they move up.
TOLD_WAITERS = 50
# Releases remembered whose request had not arrived yet.
EARLY_RELEASES = 200
# Requests beyond this many waiting are ignored: a signal flood cannot grow the
# workflow without bound (Temporal allows 10,000 signals per execution anyway).
QUEUE_LIMIT = 5000
MEMO_WAITERS = 50
_TEXT = 300  # longest run or step name accepted in a request


def _request(found: Any) -> LockRequest | None:
    """A holder's request as the lock keeps it; None for anything else."""
    if not isinstance(found, dict):
        return None
    token, run = found.get("token"), found.get("run")
    if not isinstance(token, str) or not isinstance(run, str) or not token or not run:
        return None
    temporal_run_id = found.get("temporal_run_id") or ""
    step = found.get("step")
    if not isinstance(temporal_run_id, str) or not (step is None or isinstance(step, str)):
        return None
    if len(token) > _TEXT or len(run) > _TEXT * 4 or len(step or "") > _TEXT:
        return None
    return {"token": token, "run": run, "temporal_run_id": temporal_run_id, "step": step}


def public(holder: LockRequest) -> LockHolder:
    """What others may see of a holder or waiter: never its token, which releases it."""
    return {
        "run": holder.get("run"),
        "step": holder.get("step"),
        "since": holder.get("since"),
        "queued_at": holder.get("queued_at"),
    }


# On versioned workers it is Pinned like the runs (the worker's default): it lives
# only while someone holds or waits, so it finishes on the build that started it.
@workflow.defn(name=LOCK_WORKFLOW_TYPE)
class LockWorkflow:
    def __init__(self) -> None:
        self._authenticated: bool | None = None
        self.key = ""
        self.holder: LockRequest | None = None
        self.queue: list[LockRequest] = []
        self.released: set[str] = set()  # tokens of holders that gave the key back
        self.early: list[str] = []  # released before their request arrived
        self.version = 0  # bumped on every change the memo shows
        self._tasks: set[asyncio.Task[Any]] = set()  # signals on their way to waiters

    # -- handlers -----------------------------------------------------------------

    def authenticated(self) -> bool:
        """Whether this lock authenticates its messages (asked once, at its first act)."""
        if self._authenticated is None:
            self._authenticated = workflow.patched(LOCK_MAC)
        return self._authenticated

    def _key(self) -> str:
        return workflow.info().workflow_id.removeprefix(LOCK_ID_PREFIX)

    @workflow.signal(name=LOCK_ACQUIRE)
    def acquire(self, request: Any) -> None:
        found = _request(request)
        if found is None or len(self.queue) >= QUEUE_LIMIT:
            return
        if self.authenticated() and not internal.valid(
            request.get("mac"), "acquire", self._key(), *(found.get(k) for k in ACQUIRE_FIELDS)
        ):
            return  # not made by a worker's lock_request: nobody is queued by it
        token = found["token"]
        if token in self.early:
            self.early.remove(token)
            return
        if (self.holder is not None and self.holder["token"] == token) or any(
            w["token"] == token for w in self.queue
        ):
            return  # the same request again: the activity that sent it was retried
        found["queued_at"] = iso(workflow.now())
        self.queue.append(found)
        self.version += 1
        if self.holder is not None:
            # Tell the newcomer whom it waits for; it hears again when the holder changes.
            news = self._waiting(found, len(self.queue))
            self._background(self._tell(found, news))

    @workflow.signal(name=LOCK_RELEASE)
    def release(self, request: Any) -> None:
        token = request.get("token") if isinstance(request, dict) else None
        if not isinstance(token, str):
            return
        if self.authenticated() and not internal.valid(
            request.get("mac"), "release", self._key(), token
        ):
            return  # not sent by the holder (or waiter) itself
        if self.holder is not None and self.holder["token"] == token:
            self.released.add(token)
            return
        before = len(self.queue)
        self.queue = [w for w in self.queue if w["token"] != token]
        if len(self.queue) == before:
            self.early = [*self.early, token][-EARLY_RELEASES:]
        self.version += 1

    @workflow.query(name="state")
    def state(self) -> LockPicture:
        return self.picture()

    # -- the lock -----------------------------------------------------------------

    @workflow.run
    async def run(self, start: Any) -> None:
        # The input (a LockInput) is typed Any and read with care: anyone may start this
        # workflow through the Temporal API, and an input that failed to decode would
        # fail every workflow task, leaving a lock that serves nobody for ever. The key
        # is the workflow's id, whatever the input says.
        given = start if isinstance(start, dict) else {}
        self.authenticated()
        self.key = self._key()
        # Requests carried over a continue-as-new come first; the request that started
        # this workflow (or arrived with its first task) is queued already, behind them.
        carried_queue = []
        queued = given.get("queue")
        for entry in queued if isinstance(queued, list) else []:
            found = _request(entry)
            if found is not None:
                found["queued_at"] = entry.get("queued_at")
                carried_queue.append(found)
        self.queue = carried_queue + self.queue
        memo = asyncio.create_task(self._memo())
        carried = _request(given.get("holder"))
        if carried is not None:
            carried["since"] = given["holder"].get("since")
            self.holder = carried
            await self._hold(carried)
        while self.queue:
            if workflow.info().is_continue_as_new_suggested():
                memo.cancel()
                workflow.continue_as_new(LockInput(self.key, None, self.queue))
            waiter = self.queue.pop(0)
            waiter["since"] = iso(workflow.now())
            self.holder = waiter
            self.version += 1
            news: LockNews = {"key": self.key, "token": waiter["token"], "status": "granted"}
            if await self._tell(waiter, news):
                self._background(self._tell_waiters())
                await self._hold(waiter)
            self.holder = None
            self.version += 1
        # Nobody holds or waits: the workflow ends, and the next request starts a new
        # one. A request arriving meanwhile fails this completion, and is served.
        memo.cancel()

    async def _hold(self, holder: LockRequest) -> None:
        """Until the holder gives the key back, or its run has closed."""
        token = holder["token"]
        while token not in self.released:
            watch = workflow.start_activity(
                LOCK_WATCH_ACTIVITY,
                {
                    "run": holder["run"],
                    "temporal_run_id": holder["temporal_run_id"],
                    "seconds": WATCH_SECONDS,
                },
                start_to_close_timeout=timedelta(seconds=WATCH_SECONDS + 60),
                heartbeat_timeout=WATCH_HEARTBEAT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
                cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
                summary=f"watch the holder of lock {self.key}: {holder['run']}",
            )
            await workflow.wait_condition(lambda w=watch: token in self.released or w.done())  # type: ignore[misc]
            if not watch.done():
                watch.cancel()
                # Its end (a cancel) is of no interest; retrieve it so it is not logged.
                watch.add_done_callback(_retrieved)
                break
            try:
                closed = bool((await watch).get("closed", True))
            except Exception:
                closed = True  # the watch cannot go on: do not keep the key for ever
            if closed:
                if self.authenticated() and token not in self.released:
                    # Closed without giving the key back (terminated): its steps may
                    # still run until they hear of it; the next holder waits them out.
                    await workflow.sleep(
                        FENCE, summary=f"lock {self.key}: let {holder['run']} stop"
                    )
                break
        self.released.discard(token)

    def _background(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, to: LockRequest, news: LockNews) -> bool:
        """Signal a run; False when it has closed (or never was)."""
        if self.authenticated():
            news = {**news, "mac": internal.mac("news", self.key, news["token"], news["status"])}
        handle = workflow.get_external_workflow_handle(
            to["run"], run_id=to["temporal_run_id"] or None
        )
        try:
            await handle.signal(LOCK_NEWS, news)
        except Exception:
            return False
        return True

    async def _tell_waiters(self) -> None:
        """Tell the first waiters who holds the key now; drop those whose run has closed."""
        holder = self.holder
        if holder is None:
            return
        told = self.queue[:TOLD_WAITERS]
        results = await asyncio.gather(
            *(self._tell(w, self._waiting(w, i + 1)) for i, w in enumerate(told))
        )
        gone = {w["token"] for w, ok in zip(told, results, strict=True) if not ok}
        if gone:
            self.queue = [w for w in self.queue if w["token"] not in gone]
            self.version += 1

    def _waiting(self, waiter: LockRequest, position: int) -> LockNews:
        assert self.holder is not None
        return {
            "key": self.key,
            "token": waiter["token"],
            "status": "waiting",
            "holder": public(self.holder),
            "position": position,
        }

    # -- what `qlrf-run locks` shows -------------------------------------------------

    def picture(self) -> LockPicture:
        return {
            "key": self.key,
            "holder": public(self.holder) if self.holder is not None else None,
            "waiters": [public(w) for w in self.queue[:MEMO_WAITERS]],
            "waiting": len(self.queue),
        }

    async def _memo(self) -> None:
        published = [-1]
        while True:
            await workflow.wait_condition(lambda: self.version != published[0])
            published[0] = self.version
            workflow.upsert_memo({LOCK_MEMO: self.picture()})


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
