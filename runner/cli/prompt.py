"""The interactive gate prompt of `apply` when stdin is a terminal.

The terminal is read from the event loop (no thread), so a prompt can be withdrawn:
when someone else decides the gate, and when the run ends. What was typed into a
withdrawn prompt is discarded, so it never answers a later question. The prompt is
offered only to someone the gate lets decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from runner.cli.common import out
from runner.contract.state import GateView, RunView
from runner.contract.vocab import DecisionKind
from runner.errors import QlrfError


class GatePrompt:
    """Asks about each gate that opens (once per opening or modification); one at a time."""

    def __init__(self, client: Any, where: Any, run: str, user: str) -> None:
        self.client = client
        self.where = where
        self.run = run
        self.user = user
        self.asked: set[tuple[str, int]] = set()
        self.task: asyncio.Task[None] | None = None
        self.asking: tuple[str, int] | None = None
        # Set by the watcher: stops redrawing the terminal while someone types.
        self.paused: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext

    def update(self, state: RunView) -> None:
        if self.task is not None and not self.task.done():
            self._withdraw_if_decided(state)
            return
        for gate in state.gates:
            key = (gate.gate, gate.round)
            if gate.waiting and key not in self.asked:
                self.asked.add(key)
                choices = _choices(gate, self.user, state.started_by)
                if not choices:
                    continue  # the log says who may decide it
                self.asking = key
                self.task = asyncio.ensure_future(self._asked(gate, choices))
                return

    async def close(self) -> None:
        """The run ended or the following stopped: no question stays open."""
        task = self.task
        if task is None or task.done():
            return
        if self.asking is not None:  # still a question; an answer on its way is awaited
            task.cancel()
            _discard_typed()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _withdraw_if_decided(self, state: RunView) -> None:
        if self.asking is None or self.task is None:
            return
        name, round_ = self.asking
        gate = next((g for g in state.gates if g.gate == name), None)
        if gate is not None and gate.waiting and gate.round == round_:
            return
        self.task.cancel()
        _discard_typed()
        self.asking = None
        now = gate.status if gate is not None else "gone"
        out(f"\n  gate {name} was decided elsewhere ({now}): this question is withdrawn")

    async def _asked(self, gate: GateView, choices: list[str]) -> None:
        with self.paused():
            await self._ask(gate, choices)

    async def _ask(self, gate: GateView, choices: list[str]) -> None:
        from runner.app.context import Context
        from runner.app.decide import DecideRequest, decide

        name = gate.gate
        offered = " / ".join(f"[{c[0]}]{c[1:]}" for c in choices)
        answer = (
            await read_line(f"  decide gate {name} as {self.user}? {offered} / [Enter] later: ")
        ).lower()
        ask = DecideRequest(self.run, name, DecisionKind.APPROVE, self.user)
        chosen = next((c for c in choices if answer in (c, c[0])), None) if answer else None
        if chosen == DecisionKind.REJECT:
            ask.decision = DecisionKind.REJECT
            ask.comment = await read_line("  why? ")
        elif chosen == DecisionKind.MODIFY:
            changes = await read_line(f"  NAME=VALUE ... ({', '.join(gate.modifiable)}): ")
            ask.decision, ask.assignments = DecisionKind.MODIFY, changes.split()
        elif chosen is None:
            out(f"  later: qlrf-run approve {self.run} {name}")
            return
        self.asking = None  # an answer is on its way: it is not withdrawn any more
        try:
            done = await decide(Context(self.client, self.where), ask)
        except QlrfError as exc:  # a value that does not convert: nothing was sent
            out(f"  not sent: {exc}")
            self.asked.discard((name, gate.round))
            return
        if done.accepted:
            out(f"  {ask.decision} accepted: gate {name} is {done.gate.status}")
        else:
            out(f"  refused: {done.refused}")
            self.asked.discard((name, gate.round))


def _choices(gate: GateView, user: str, started_by: str | None) -> list[str]:
    """What `user` may do at `gate`, as far as the run's picture tells: the run still
    checks every decision (a group's members are known only to the worker)."""
    listed = [a for a in gate.approvers if not a.startswith("group:")]
    if gate.approvers and len(listed) == len(gate.approvers) and user not in listed:
        return []
    choices: list[str] = [DecisionKind.APPROVE, DecisionKind.REJECT]
    if user == started_by and gate.allow_self_approval is False:
        choices.remove(DecisionKind.APPROVE)  # the starter may not approve their own run
    if gate.modifiable:
        choices.append(DecisionKind.MODIFY)
    return choices


async def read_line(prompt: str) -> str:
    """One line from the terminal, read by the event loop: cancelling it leaves nothing
    behind. A terminal in its usual (line) mode hands over whole lines."""
    out(prompt.rstrip())
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    line: asyncio.Future[str] = loop.create_future()
    typed = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # end of input: an empty answer
            if not line.done():
                line.set_result(typed.decode(errors="replace"))
            return
        typed.extend(chunk)
        if b"\n" in typed and not line.done():
            line.set_result(typed.split(b"\n", 1)[0].decode(errors="replace"))

    loop.add_reader(fd, readable)
    try:
        return (await line).strip()
    finally:
        loop.remove_reader(fd)


def _discard_typed() -> None:
    """Throw away what was typed and not read yet, so it answers nothing later."""
    with contextlib.suppress(Exception):
        import termios

        termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
