"""The step sandbox: what a `shell` step's processes can see of the worker.

A step is code that a runbook author, or the value an input carries, chose; the
worker holds secrets, a seal key and the trust file. Each attempt of a shell step
runs under bubblewrap (`bwrap`, from the system packages), in namespaces of its own:

- a **process namespace**: it sees its own processes only, not the worker's, not
  another step's, and every process it started dies with it (a `setsid` daemon
  too). A step with `keep_processes: true` (one that starts a server later steps
  use) runs instead in its *run's* process namespace on this worker, shared by the
  run's steps that keep processes, kept until the run closes (runspace.py): its
  processes outlive it, and die with the run;
- a **mount namespace** in which qlrf-run's own files (runner/steps/own_files.py:
  the secrets file, the seal key, the trust file, ...) read as nothing, and /dev holds
  only the ordinary devices (no disks to read them from underneath);
- an **IPC namespace**;
- run by root, without the capabilities that would undo all of it (mounting,
  tracing, reading by inode, raw devices, loading modules).

The worker itself is non-dumpable (`harden_worker`): no process of its user can read
its memory or environment through /proc, and the secrets given in its environment
are taken out of it at its start (runner/steps/secrets.py capture), so no process it
starts inherits them.

QLRF_STEP_SANDBOX picks: `auto` (the default: the sandbox when bwrap works here,
else none, said in the worker's start line), `required` (a worker without it refuses
to start; signed mode requires it too) or `off`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

from runner.errors import QlrfError
from runner.steps.own_files import own_files

MODE_VARIABLE = "QLRF_STEP_SANDBOX"
MODES = ("auto", "required", "off")
# What root keeps in a step: what admin work needs (chown, setuid to a service user,
# overriding file modes, binding ports, signals); not what would read around the
# sandbox (mounts, ptrace, open_by_handle_at, raw I/O, modules, BPF).
DROPPED = (
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_BOOT",
    "CAP_MKNOD",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYSLOG",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_AUDIT_CONTROL",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_LINUX_IMMUTABLE",
)
PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class Sandbox:
    kind: str  # "bwrap" or "none"
    why: str  # what the worker's start line says of it

    @property
    def on(self) -> bool:
        return self.kind == "bwrap"

    def wrap(self, argv: list[str], *, join: list[str] | None = None) -> list[str]:
        """`argv` as it runs in the sandbox (as it is without one): in a process
        namespace of its own, as its PID 1 (so that the namespace, and every process
        left in it, ends when it does), or in the one `join` names (runspace.py)."""
        if not self.on:
            return argv
        first = [] if join is not None else ["--as-pid-1"]
        return [*bwrap_args(join), *first, "--", *argv]


def bwrap_args(join: list[str] | None = None, *, own: bool = True) -> list[str]:
    """bwrap's options for a step: the host's files with qlrf-run's own hidden, plain
    devices, its own IPC, and its own process namespace, or the one `join` names (its
    --pidns and --userns options)."""
    args = [shutil.which("bwrap") or "bwrap", "--bind", "/", "/", "--dev", "/dev"]
    args += ["--unshare-ipc", *(join if join is not None else ["--unshare-pid"])]
    args += ["--proc", "/proc"]  # the processes of its namespace, nobody else's
    if os.geteuid() == 0:
        for cap in DROPPED:
            args += ["--cap-drop", cap]
    for path in own_files() if own else []:
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.lexists(path):
            args += ["--ro-bind", "/dev/null", path]
    return args


_current: Sandbox | None = None


def use(chosen: Sandbox) -> None:
    """The sandbox this worker's shell steps run in (chosen as the worker starts)."""
    global _current
    _current = chosen


def current() -> Sandbox:
    """The sandbox chosen for this worker; for a process that chose none, the default."""
    return _current if _current is not None else sandbox()


def mode() -> str:
    value = os.environ.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise QlrfError(f"{MODE_VARIABLE}={value!r}: use one of {', '.join(MODES)}")
    return value


@functools.cache
def _probe() -> str | None:
    """None when bwrap can make a step's namespaces here; else why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        done = subprocess.run(
            [
                bwrap,
                *("--bind", "/", "/", "--dev", "/dev", "--unshare-ipc"),
                *("--unshare-pid", "--proc", "/proc", "--", "true"),
            ],
            capture_output=True,
            timeout=10,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap cannot make namespaces here: {said[-1] if said else done.returncode}"
    return None


def sandbox(*, signed: bool = False) -> Sandbox:
    """The sandbox steps run in on this worker; QlrfError when one is required and
    cannot be had (QLRF_STEP_SANDBOX=required, or signed mode unless it says off)."""
    wanted = mode()
    if wanted == "off":
        return Sandbox("none", f"steps are not sandboxed ({MODE_VARIABLE}=off)")
    problem = _probe()
    if problem is None:
        return Sandbox("bwrap", "steps sandboxed (bubblewrap)")
    if wanted == "required" or signed:
        why = f"{MODE_VARIABLE}=required" if wanted == "required" else "signed mode"
        raise QlrfError(
            f"{why} runs every step in a sandbox, and {problem}; install bubblewrap "
            f"(apt-get install bubblewrap), or set {MODE_VARIABLE}=off to run steps "
            "without one"
        )
    return Sandbox("none", f"steps are NOT sandboxed: {problem}")


def harden_worker() -> None:
    """Make this process non-dumpable: no process of its user can then read its memory,
    its environment or its open files through /proc, nor trace it."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: nothing of /proc to protect
