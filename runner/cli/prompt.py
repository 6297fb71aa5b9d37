"""The interactive gate prompt of `apply` when stdin is a terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from runner.cli.common import out


class GatePrompt:
    """Asks about each gate that opens (once per opening or modification); one at a time."""

    def __init__(self, client: Any, run: str, user: str) -> None:
        self.client = client
        self.run = run
        self.user = user
        self.asked: set[tuple[str, int]] = set()
        self.task: asyncio.Task[None] | None = None
        # Set by the watcher: stops redrawing the terminal while someone types.
        self.paused: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext

    def update(self, state: dict[str, Any]) -> None:
        if self.task is not None and not self.task.done():
            return
        for gate in state.get("gates", []):
            key = (gate["gate"], _round(gate))
            if gate["status"] == "waiting" and key not in self.asked:
                self.asked.add(key)
                self.task = asyncio.ensure_future(self._asked(gate))
                return

    async def _asked(self, gate: dict[str, Any]) -> None:
        with self.paused():
            await self._ask(gate)

    async def _ask(self, gate: dict[str, Any]) -> None:
        from runner.client.runs import decide, declarations
        from runner.errors import QlrfError
        from runner.plan.inputs import parse_assignments

        name = gate["gate"]
        answer = (
            await _read(
                f"  decide gate {name} as {self.user}? "
                "[a]pprove / [r]eject / [m]odify / [Enter] later: "
            )
        ).lower()
        decision: dict[str, Any] = {"gate": name, "by": self.user, "comment": ""}
        if answer in ("a", "approve"):
            decision["decision"] = "approve"
        elif answer in ("r", "reject"):
            decision["decision"] = "reject"
            decision["comment"] = await _read("  why? ")
        elif answer in ("m", "modify"):
            changes = await _read(f"  NAME=VALUE ... ({', '.join(gate['modifiable'])}): ")
            try:
                decision["set"] = parse_assignments(
                    changes.split(), await declarations(self.client, self.run)
                )
            except QlrfError as exc:
                out(f"  not sent: {exc}")
                self.asked.discard((name, _round(gate)))
                return
            decision["decision"] = "modify"
        else:
            out(f"  later: qlrf-run approve {self.run} {name}")
            return
        accepted, detail = await decide(self.client, self.run, decision)
        if accepted:
            out(f"  {decision['decision']} accepted: gate {name} is {detail['status']}")
        else:
            out(f"  refused: {detail}")
            self.asked.discard((name, _round(gate)))


def _round(gate: dict[str, Any]) -> int:
    return int(gate.get("round", len(gate.get("modifications") or [])))


async def _read(prompt: str) -> str:
    out(prompt.rstrip())
    line = await asyncio.to_thread(input)
    return line.strip()
