"""Following a run for a person: `apply` and `watch`.

The events of the run are printed as a log, in the order they happened. In a
terminal, the running steps, waves and waiting gates are also redrawn below the
log (like `argo --watch`); when the output is a file or a pipe, only the log is
written. The first Ctrl-C stops following (the run goes on); a second one leaves
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from runner.cli.common import INTERRUPTED, out
from runner.cli.console import STYLES, make_console, safe
from runner.cli.events import Differ
from runner.cli.progress import event_lines, summary, wave_line
from runner.client.state import Snapshot
from runner.contract.state import RunView
from runner.contract.vocab import RunStatus, StepStatus
from runner.times import between, human_duration


class Watch:
    """Turns snapshots into printed events and, in a terminal, a redrawn view."""

    def __init__(self, console: Console, run_id: str, *, redraw: bool) -> None:
        self.console = console
        self.run_id = run_id
        self.redraw = redraw and console.is_terminal
        self.differ = Differ(run_id, wave_progress=not self.redraw)
        self.state: RunView | None = None
        self.live: Live | None = None
        self.prompt: Any = None

    def start(self) -> None:
        if self.redraw:
            self.live = Live(
                get_renderable=self._view,
                console=self.console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No redrawing while someone types an answer."""
        live = self.live
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()

    def on_snapshot(self, snap: Snapshot) -> None:
        self.state = snap.view
        started = snap.view.started_at
        for event in self.differ.feed(snap):
            for line in event_lines(event, started):
                self.console.print(line)
        if self.prompt is not None:
            self.prompt.update(snap.view)

    def _view(self) -> Group:
        """The running steps, waves and waiting gates, as they are now."""
        now = datetime.now(UTC)
        lines: list[Text] = []
        state = self.state
        if state is None:
            return Group()
        for sid, step in state.steps.items():
            if step.status != StepStatus.RUNNING:
                continue
            took = between(step.started_at, now.isoformat())
            line = Text(f"  {'>':>8}  ")
            line.append(f"{sid:<22} ", style="bold")
            line.append(f"running {human_duration(took)}", style=STYLES["running"])
            lines.append(line)
            for wave in step.fanout.waves if step.fanout is not None else []:
                if wave["status"] in ("running", "pausing", "waiting", "paused"):
                    row = Text(f"  {'':>8}  ")
                    row.append_text(wave_line(wave, f"{sid}/{wave['name']}", now))
                    lines.append(row)
        for gate in state.waiting_gates():
            lines.append(
                Text(
                    f"  {'?':>8}  gate {gate.gate} waits: "
                    f"qlrf-run approve {self.run_id} {gate.gate}",
                    style=STYLES["waiting"],
                )
            )
        if state.paused:
            lines.append(Text(f"  {'||':>8}  run paused", style=STYLES["paused"]))
        shown: Group = safe(Group(*lines))
        return shown


@contextlib.contextmanager
def ctrl_c(stop: asyncio.Event, waiting: str | None = None) -> Iterator[None]:
    """The first Ctrl-C sets `stop` (and says `waiting`, what is waited for then); a
    second one leaves at once."""
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        if stop.is_set():
            sys.stderr.write("\ninterrupted again: leaving now\n")
            sys.stderr.flush()
            os._exit(INTERRUPTED)
        if waiting:
            sys.stderr.write(f"\n{waiting}; press Ctrl-C again to leave now\n")
            sys.stderr.flush()
        stop.set()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError):  # not the main thread: keep the default
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def follow_for_people(
    client: Any,
    handle: Any,
    console: Console,
    *,
    stop: asyncio.Event,
    ui_url: str | None,
    prompt: Any = None,
    redraw: bool = True,
) -> RunView | None:
    """Print the run's progress until it ends (its final state) or `stop` (None)."""
    from runner.app.follow import follow

    watch = Watch(console, handle.id, redraw=redraw)
    if prompt is not None:
        watch.prompt = prompt
        prompt.paused = watch.paused
    watch.start()
    try:
        final = await follow(handle, watch.on_snapshot, client, stop=stop)
    finally:
        if prompt is not None:
            await prompt.close()  # the run ended or the following stopped: no question stays
        watch.stop()
    if final is None:
        return None
    for line in summary(final.view, ui_url):
        console.print(line)
    return final.view


def stopped_following(console: Console, run_id: str, *, worker_here: bool) -> None:
    err = make_console(stderr=True)
    err.print(f"stopped following; run {run_id} goes on. Follow it again: qlrf-run watch {run_id}")
    if worker_here:
        err.print(
            "this process's worker stops too: start one with `qlrf-run worker` unless another "
            "worker serves the run"
        )


async def run_and_follow(
    client: Any,
    handle: Any,
    worker: Any,
    *,
    as_json: bool,
    console: Any,
    ui_url: str | None,
    prompt: Any = None,
    first: Any = None,
) -> RunView | None:
    """Follow a run to its end with `worker` (None: others) running meanwhile, as
    `apply` and `redrive` do; `first()` is awaited once the worker runs. The final
    state, or None when Ctrl-C stopped the following (the run goes on)."""
    import asyncio

    stop = asyncio.Event()
    state: RunView | None
    # This process's worker finishes (or cancels) the activities it runs before it
    # stops: that can take a while, and the person should know why.
    waiting = (
        "stopping: this process's worker waits for its running steps to finish (the run goes on)"
        if worker is not None
        else None
    )
    with ctrl_c(stop, waiting):
        async with worker if worker is not None else contextlib.nullcontext():
            if first is not None:
                await first()
            if as_json:
                from runner.app.follow import follow

                final = await follow(handle, lambda _: None, client, stop=stop)
                state = final.view if final is not None else None
            else:
                state = await follow_for_people(
                    client, handle, console, stop=stop, ui_url=ui_url, prompt=prompt
                )
            if state is None:
                stopped_following(console, handle.id, worker_here=worker is not None)
    return state


def finished(state: RunView | None, as_json: bool) -> int:
    """The exit code of a followed run: 0 succeeded, 1 not, 130 when Ctrl-C stopped the
    following; with --format json, the final state is printed."""
    if state is None:
        return INTERRUPTED
    if as_json:
        out(json.dumps(state.to_json(), indent=2, default=str))
    return 0 if state.status == RunStatus.SUCCEEDED else 1
