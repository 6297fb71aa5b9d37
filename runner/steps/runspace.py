"""A run's process namespace on a worker, for its steps that keep processes.

A shell step with `keep_processes: true` starts something that later steps use (the
drill's PostgreSQL servers). Such steps of one run share a process namespace on this
worker: made by the first of them, held by a small process of ours (its PID 1), and
kept until the run closes. A kept process lives there after its step has ended, the
run's later steps that keep processes see it (to stop it, to promote it), and it dies
with the namespace when the run closes, or when the worker dies (the guardian kills
the holder). Nothing else is in it: not the worker, not another run, not the run's
steps that keep nothing, which each have a namespace of their own.

A run whose steps run on several workers has a namespace on each; a kept process is
seen by the later steps that run on the same worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from runner.steps.guardian import guardian
from runner.steps.sandbox import bwrap_args

# The holder, PID 1 of the namespace: it reaps what is left to it, and ends (taking
# the namespace with it) when the worker closes its pipe.
_HOLDER = r"""
import os, select, signal, sys
fd = int(sys.argv[1])
signal.signal(signal.SIGCHLD, lambda *_: None)
while True:
    try:
        ready = select.select([fd], [], [], 1.0)[0]
    except InterruptedError:
        ready = []
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    if ready and not os.read(fd, 1):
        break
"""
WATCH_TIMEOUT = timedelta(minutes=5)


@dataclass
class Space:
    run: str
    holder: subprocess.Popen[bytes]
    pipe: int  # the worker's end: closing it ends the holder
    fds: list[int] = field(default_factory=list)  # its namespaces, open for joining
    join: list[str] = field(default_factory=list)  # bwrap's options to join them
    watch: asyncio.Task[None] | None = None

    def alive(self) -> bool:
        return self.holder.poll() is None

    def close(self) -> None:
        for fd in (self.pipe, *self.fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.holder.wait(timeout=5)
        guardian().release(self.holder.pid)


_SPACES: dict[str, Space] = {}


def joining(run: str, client: Any) -> tuple[list[str], list[int]]:
    """bwrap's options to run a step in `run`'s namespace on this worker, and the file
    descriptors they name (to pass to it); the namespace is made when it has none.
    `client` watches the run, to end the namespace when the run closes."""
    space = _SPACES.get(run)
    if space is None or not space.alive():
        if space is not None:
            space.close()
        space = _SPACES[run] = _make(run)
        space.watch = asyncio.get_running_loop().create_task(_until_closed(space, client))
    return space.join, space.fds


def _make(run: str) -> Space:
    info_read, info_write = os.pipe()
    hold_read, hold_write = os.pipe()
    try:
        holder = subprocess.Popen(
            [
                *bwrap_args(),
                "--as-pid-1",
                *("--info-fd", str(info_write)),
                "--",
                sys.executable,
                *("-I", "-S", "-c", _HOLDER, str(hold_read)),
            ],
            pass_fds=(info_write, hold_read),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    finally:
        os.close(info_write)
        os.close(hold_read)
    guardian().register(holder.pid)
    try:
        child = _child_pid(info_read)
    finally:
        os.close(info_read)
    space = Space(run, holder, hold_write)
    pidns = os.open(f"/proc/{child}/ns/pid", os.O_RDONLY)
    space.fds.append(pidns)
    space.join = ["--pidns", str(pidns)]
    if os.geteuid() != 0:
        # Unprivileged, the namespace belongs to a user namespace of its own: join both.
        userns = os.open(f"/proc/{child}/ns/user", os.O_RDONLY)
        space.fds.append(userns)
        space.join = ["--userns", str(userns), *space.join]
    return space


def _child_pid(fd: int) -> int:
    """The holder's pid as this worker sees it, from bwrap's --info-fd."""
    data = b""
    while b"}" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            raise OSError("bwrap ended before it said what it started")
        data += chunk
    return int(json.loads(data[: data.index(b"}") + 1])["child-pid"])


async def _until_closed(space: Space, client: Any) -> None:
    """End the namespace once its run has closed, however it closed."""
    handle = client.get_workflow_handle(space.run)
    while space.alive():
        try:
            await handle.result(follow_runs=False, rpc_timeout=WATCH_TIMEOUT)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _still_running(exc):
                await asyncio.sleep(1.0)
                continue
            break  # failed, cancelled, terminated, gone: closed all the same
    if _SPACES.get(space.run) is space:
        del _SPACES[space.run]
    await asyncio.to_thread(space.close)


def _still_running(exc: BaseException) -> bool:
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(exc, RPCError):
        # A long poll that timed out, or a server that is away: ask again.
        return exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE)
    return isinstance(exc, TimeoutError)


def close_all() -> None:
    """End every namespace (the worker stops)."""
    for space in list(_SPACES.values()):
        space.close()
    _SPACES.clear()
