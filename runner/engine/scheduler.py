"""What runs next: needs, trigger rules, `when`, skips, failure, compensation order, finally.

A plain object with no Temporal import, modelled on orquesta's conductor: the
interpreter hands it a host that runs one step (`run_step`), skips one, and waits
for a condition; the scheduler decides the order. Unit tests drive it with plain
asyncio and invented outcomes (tests/unit/test_scheduler.py).

The rules (docs/engine.md, "Which step runs, and when"):
- A step is considered once every need has ended. It runs when its trigger rule
  holds (`when` is the host's to check), else it ends `skipped` with the reason.
- A failure with `on_failure: fail` makes the run failing: the steps running then
  are cancelled once; no new `all_succeeded` step starts; `all_done`, `one_failed`
  and `always` steps still start once their needs are done.
- A cancel or the run's timeout halts the run: everything running is cancelled,
  and only `always` steps still start.
- Every step ends in a terminal state: one that can never run is `skipped`.
- Compensations run in the reverse order in which steps succeeded.

Runs started before these rules (`legacy`) keep the earlier ones, so that their
histories replay: after a failure only `always` steps started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from runner.plan.model import Node

TERMINAL = frozenset(("succeeded", "failed", "skipped", "cancelled"))


@dataclass(frozen=True)
class StepEnd:
    """How a step's run ended, as the host reports it."""

    status: str  # succeeded | failed | skipped
    failure: Any = None  # what failed it (a StepFailed), when it failed


class Host(Protocol):
    """What the scheduler needs from the run it schedules."""

    @property
    def paused(self) -> bool: ...

    def knows(self, step_id: str) -> bool: ...

    def status_of(self, step_id: str) -> str: ...

    def skip(self, node: Node, reason: str) -> None: ...

    def stopping(self, step_id: str, reason: str) -> None: ...

    async def run_step(self, node: Node, in_finally: bool) -> StepEnd: ...

    async def wait(self, condition: Callable[[], bool], summary: str | None = None) -> None: ...


class Scheduler:
    def __init__(
        self,
        nodes: Sequence[Node],
        finally_nodes: Sequence[Node],
        limit: int,
        host: Host,
        *,
        legacy: bool = False,
    ) -> None:
        self.nodes = list(nodes)
        self.finally_nodes = list(finally_nodes)
        self.limit = limit
        self.host = host
        self.legacy = legacy
        self.failure: tuple[Node, Any] | None = None  # the first failure that fails the run
        self.failing = False  # compensations run, and new steps follow the failure rules
        self.halted: str | None = None  # why only `always` steps may still start
        self.completed: list[str] = []  # succeeded steps, in completion order
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = False
        self._stopped = False  # the running steps were cancelled after a failure

    # -- driving ----------------------------------------------------------------------

    async def run_steps(self) -> None:
        await self._section(self.nodes, in_finally=False)

    async def run_finally(self) -> None:
        await self._section(self.finally_nodes, in_finally=True)

    def wake(self) -> None:
        """Something the scheduler waits on changed (a step ended, the run resumed)."""
        self._changed = True

    def halt(self, reason: str) -> None:
        """A cancel or the run's timeout: only `always` steps start from now on."""
        self.halted = reason
        self.failing = True

    @property
    def running(self) -> list[str]:
        return list(self._tasks)

    async def stop(self, reason: str, *, force: bool = False) -> None:
        """Cancel the running steps and wait until they have ended.

        After a step failure this happens once, so that steps started later under
        the failure rules still run; a cancel or the run's timeout (force) stops
        everything.
        """
        if self._stopped and not force:
            return
        self._stopped = True
        tasks = list(self._tasks.items())
        for step_id, task in tasks:
            self.host.stopping(step_id, reason)
            task.cancel()
        for _, task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def compensations(self) -> list[Node]:
        """The succeeded steps that have a compensation, latest first."""
        by_id = {n.id: n for n in self.nodes}
        found = (by_id.get(sid) for sid in reversed(self.completed))
        return [node for node in found if node is not None and node.compensate is not None]

    # -- one section: the steps, or finally -------------------------------------------

    async def _section(self, nodes: list[Node], *, in_finally: bool) -> None:
        """Start every node whose needs are done, up to the run's limit, until all end."""
        ids = {n.id for n in nodes}
        waiting = list(nodes)
        host = self.host
        while waiting or any(sid in self._tasks for sid in ids):
            if self.failing and not in_finally:
                await self.stop("another step failed")
            progressed = not host.paused  # a paused run starts nothing new
            while progressed:
                progressed = False
                for node in list(waiting):
                    needs = [n for n in node.needs if host.knows(n)]
                    if any(host.status_of(n) not in TERMINAL for n in needs):
                        continue
                    reason = self.skip_reason(node, needs, in_finally)
                    if reason is not None:
                        host.skip(node, reason)
                        waiting.remove(node)
                        progressed = True
                        continue
                    if len(self._tasks) >= self.limit:
                        continue
                    waiting.remove(node)
                    self._tasks[node.id] = asyncio.create_task(self._run(node, in_finally))
                    progressed = True
            running = [sid for sid in ids if sid in self._tasks]
            if not running and waiting and host.paused:
                await host.wait(lambda: not host.paused, "paused")
                continue
            if not running:
                for node in waiting:  # cannot happen after validation; never wait forever
                    host.skip(node, "its needs can never finish")
                break
            self._changed = False
            await host.wait(lambda: self._changed)

    def skip_reason(self, node: Node, needs: list[str], in_finally: bool) -> str | None:
        """Why `node`, whose needs have all ended, will not run; None when it may."""
        rule = node.trigger_rule
        if not in_finally:
            if self.legacy:
                if self.failing and rule != "always":
                    return "the run is failing"
            elif self.halted is not None and rule != "always":
                return self.halted
            elif self.failing and rule == "all_succeeded":
                return "the run is failing"
        statuses = [self.host.status_of(n) for n in needs]
        if rule == "all_succeeded" and any(s != "succeeded" for s in statuses):
            bad = next(n for n in needs if self.host.status_of(n) != "succeeded")
            return f"'{bad}' did not succeed ({self.host.status_of(bad)})"
        if rule == "one_failed" and "failed" not in statuses:
            return "none of its needs failed"
        return None

    async def _run(self, node: Node, in_finally: bool) -> None:
        try:
            end = await self.host.run_step(node, in_finally)
        except asyncio.CancelledError:
            self._ended(node)
            raise
        # A GeneratorExit (the worker evicted the run from its cache) passes through
        # untouched: the run goes on elsewhere from history.
        if end.status == "succeeded":
            self.completed.append(node.id)
        elif end.status == "failed" and node.on_failure == "fail" and self.failure is None:
            self.failure = (node, end.failure)
            # A failing finally step fails the run, but nothing is compensated after finally.
            if not in_finally:
                self.failing = True
        self._ended(node)

    def _ended(self, node: Node) -> None:
        self._tasks.pop(node.id, None)
        self._changed = True
