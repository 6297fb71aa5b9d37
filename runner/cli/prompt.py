"""The interactive gate prompt of `apply` when stdin is a terminal."""

from __future__ import annotations

import asyncio
import contextlib
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
        # Set by the watcher: stops redrawing the terminal while someone types.
        self.paused: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext

    def update(self, state: RunView) -> None:
        if self.task is not None and not self.task.done():
            return
        for gate in state.gates:
            key = (gate.gate, gate.round)
            if gate.waiting and key not in self.asked:
                self.asked.add(key)
                self.task = asyncio.ensure_future(self._asked(gate))
                return

    async def _asked(self, gate: GateView) -> None:
        with self.paused():
            await self._ask(gate)

    async def _ask(self, gate: GateView) -> None:
        from runner.app.context import Context
        from runner.app.decide import DecideRequest, decide

        name = gate.gate
        answer = (
            await _read(
                f"  decide gate {name} as {self.user}? "
                "[a]pprove / [r]eject / [m]odify / [Enter] later: "
            )
        ).lower()
        ask = DecideRequest(self.run, name, DecisionKind.APPROVE, self.user)
        if answer in ("a", "approve"):
            pass
        elif answer in ("r", "reject"):
            ask.decision = DecisionKind.REJECT
            ask.comment = await _read("  why? ")
        elif answer in ("m", "modify"):
            changes = await _read(f"  NAME=VALUE ... ({', '.join(gate.modifiable)}): ")
            ask.decision, ask.assignments = DecisionKind.MODIFY, changes.split()
        else:
            out(f"  later: qlrf-run approve {self.run} {name}")
            return
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


async def _read(prompt: str) -> str:
    out(prompt.rstrip())
    line = await asyncio.to_thread(input)
    return line.strip()
