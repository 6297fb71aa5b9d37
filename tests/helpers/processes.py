"""Whether a process is still alive (a zombie is not: it only waits to be reaped)."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def running(marker: str) -> list[int]:
    """The live processes (seen from here, the host) whose command line holds `marker`.

    A step runs in a process namespace of its own, so the pids it can see (`$$`, `$!`)
    are not the host's: tests find a step's processes by a marker in their command line
    instead (a comment in its script, an odd sleep duration)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
        except OSError:
            continue
        if marker in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
