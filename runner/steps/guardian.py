"""The guardian: a step's processes die with the worker that runs them, even by SIGKILL
(and so do the test servers `qlrf-run test` starts, runner/testing/session.py).

Each worker process starts one small guardian process and keeps a pipe to it.
Every step's process group is registered with the guardian before the step may
run, and released when it ends. When the worker dies, however it dies, the
kernel closes the pipe; the guardian reads end-of-file and kills every process
group still registered. So a step never outlives its attempt, and the next
attempt (on another worker, after the heartbeat timeout) never overlaps it.

The step is started through a one-line handshake: it waits for the worker to
say "registered" before it execs the real program. A worker killed between
starting the step and registering it leaves a step that never runs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

# The guardian's own code: no import of qlrf-run, so it starts in milliseconds.
_GUARDIAN = r"""
import os, signal, sys
groups, processes = set(), set()
for line in sys.stdin.buffer:
    op, pgid = line[:1], line[1:].strip()
    if not pgid.isdigit():
        continue
    if op == b"+":
        groups.add(int(pgid))
    elif op == b"-":
        groups.discard(int(pgid))
    elif op == b"p":
        processes.add(int(pgid))
    elif op == b"q":
        processes.discard(int(pgid))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
for pid in processes:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
"""

# Wait for the worker's word on fd 3, then become the step's program.
HANDSHAKE = 'read -r _ <&3 || exit 125; exec 3<&-; exec "$@"'
# The exit status of a step whose worker died before registering it.
NEVER_STARTED = 125


class Guardian:
    """The worker's side of the guardian: register and release process groups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the worker process that started it (a fork needs its own)

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None or self._pid != os.getpid():
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _GUARDIAN],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its own session: a Ctrl-C at the terminal must not stop it first.
                start_new_session=True,
                close_fds=True,
                # Nothing of the worker's environment: it is a process of the worker's
                # user that steps kept beside the worker could read (docs/isolation.md).
                env={},
            )
            self._pid = os.getpid()
        return self._proc

    def _send(self, line: bytes) -> None:
        with self._lock:
            for _ in range(2):  # a guardian that died is started again, once
                proc = self._ensure()
                assert proc.stdin is not None
                try:
                    proc.stdin.write(line)
                    proc.stdin.flush()
                    return
                except (BrokenPipeError, OSError):
                    with contextlib.suppress(Exception):
                        proc.kill()
                    self._proc = None
            raise RuntimeError("the step guardian cannot be started")

    def register(self, pgid: int) -> None:
        self._send(b"+%d\n" % pgid)

    def release(self, pgid: int) -> None:
        with contextlib.suppress(RuntimeError):
            self._send(b"-%d\n" % pgid)

    def register_process(self, pid: int) -> None:
        """One process (not its group, which it shares with this one): a server that a
        library started for this process, killed with it."""
        self._send(b"p%d\n" % pid)

    def release_process(self, pid: int) -> None:
        with contextlib.suppress(RuntimeError):
            self._send(b"q%d\n" % pid)


_GUARDIAN_OF_PROCESS = Guardian()


def guardian() -> Guardian:
    return _GUARDIAN_OF_PROCESS
