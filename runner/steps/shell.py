"""The `shell` activity: a command (argv, no shell) or a bash script, with heartbeats.

- The environment is clean: only PATH, HOME, LANG and TZ of the worker's, the
  names the worker allows in QLRF_STEP_ENV_ALLOW, the step's metadata
  (QLRF_RUN, QLRF_STEP, QLRF_ATTEMPT, QLRF_ITEM), its script's QLRF_ARG_n, and its
  own `env:`. Nothing else of the worker's reaches a step, no secret above all.
- The process runs in its own session, registered with the worker's guardian
  (runner/steps/guardian.py), so it dies with the worker even on SIGKILL.
- A cancel, or the attempt's own start_to_close timeout, kills the whole process
  group: SIGTERM, then SIGKILL after a grace period. The timeout is enforced here,
  just before Temporal's, so the next attempt never overlaps this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from runner.contract import SHELL_ACTIVITY, StepRequest, StepResult
from runner.contract.messages import JsonObject
from runner.plan.inputs import nul_at
from runner.steps import runspace, sandbox
from runner.steps.common import beat, fail, resolved, result, tail
from runner.steps.guardian import NEVER_STARTED, guardian
from runner.steps.output import Captured, capture
from runner.steps.secrets import Resolver

KILL_GRACE_SECONDS = 5.0
# The step's first process in a process namespace of its own is that namespace's PID 1,
# which only takes the signals it handles: it runs the program as a child, passes a
# SIGTERM (a cancel, a timeout) on to it, and ends with it, ending the namespace and
# every process still in it.
AS_PID_1 = (
    "trap 'kill -TERM \"$child\" 2>/dev/null' TERM HUP INT; "
    '"$@" & child=$!; '
    'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || exit "$code"; done'
)
# What a failed step keeps of its output (the failure travels in Temporal's history).
FAILED_OUTPUT = 8 * 1024
HEARTBEAT_SECONDS = 1.0
# What a step always gets of the worker's environment, when the worker has it.
BASE_ENV = ("PATH", "HOME", "LANG", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
ALLOW_VARIABLE = "QLRF_STEP_ENV_ALLOW"
# Never passed on, whatever the allowlist says.
_NEVER = (
    "QLRF_SECRET_",
    "QLRF_SECRETS_FILE",
    "QLRF_SECRETS_CONFIG",
    "QLRF_SEAL_KEY",
    "QLRF_SIGNING_KEY",
    "VAULT_",  # the worker's own vault session (VAULT_TOKEN) is never a step's
    "BAO_",
)

logger = logging.getLogger("qlrf.shell")


def allowed_names() -> list[str]:
    """The worker's QLRF_STEP_ENV_ALLOW, without any name that could carry a secret."""
    names = [n.strip() for n in os.environ.get(ALLOW_VARIABLE, "").split(",") if n.strip()]
    refused = [n for n in names if n.startswith(_NEVER)]
    if refused:
        logger.warning("%s may not pass %s to steps; left out", ALLOW_VARIABLE, ", ".join(refused))
    return [n for n in names if n not in refused]


def step_environment(
    request: StepRequest, own: JsonObject, script_env: dict[str, str], attempt: int
) -> dict[str, str]:
    """The whole environment of a step's process."""
    env = {name: os.environ[name] for name in (*BASE_ENV, *allowed_names()) if name in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update({str(k): str(v) for k, v in own.items()})
    env.update(script_env)
    env.update(
        {
            "QLRF_RUN": request.run_id,
            "QLRF_STEP": request.step,
            "QLRF_ATTEMPT": str(attempt),
        }
    )
    if request.item is not None:
        env["QLRF_ITEM"] = request.item
    return env


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _terminate(proc: asyncio.subprocess.Process, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the step's process group, and SIGKILL whatever is left of it after the
    grace. The group, not its leader, is waited for: in the sandbox the leader is
    bwrap, which a SIGTERM ends at once while the step itself may still be cleaning
    up."""
    _kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 0.05)
    _kill_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def _deadline() -> tuple[float | None, float]:
    """When this attempt must stop (monotonic), and the grace its processes get then.

    Just before Temporal's start_to_close: Temporal retries on another worker once
    that passes, and the processes of this attempt must be gone by then.
    """
    limit = activity.info().start_to_close_timeout
    if not limit:
        return None, KILL_GRACE_SECONDS
    seconds = limit.total_seconds()
    margin = min(max(seconds * 0.2, 0.5), KILL_GRACE_SECONDS + 1.0)
    return time.monotonic() + seconds - margin, max(0.2, margin - 0.5)


async def _spawn(
    argv: list[str], cwd: str | None, env: dict[str, str], *, keep_in: str | None = None
) -> asyncio.subprocess.Process:
    """Start the step's process in its own session and in the worker's step sandbox
    (runner/steps/sandbox.py), registered with the guardian first. `keep_in` names the
    run whose process namespace it joins (`keep_processes`, runner/steps/runspace.py)."""
    chosen = sandbox.current()
    join: list[str] | None = None
    namespaces: list[int] = []
    if keep_in is not None and chosen.on:
        join, namespaces = runspace.joining(keep_in, activity.client())
    read_fd, write_fd = os.pipe()
    try:
        handshake = f"read -r _ <&{read_fd} || exit {NEVER_STARTED}; exec {read_fd}<&-; "
        if chosen.on and join is None:
            handshake += AS_PID_1  # the first process of a namespace of its own
        else:
            handshake += 'exec "$@"'
        launched = chosen.wrap(["bash", "-c", handshake, "qlrf-step", *argv], join=join)
        proc = await asyncio.create_subprocess_exec(
            *launched,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
            pass_fds=(read_fd, *namespaces),
        )
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    try:
        guardian().register(proc.pid)
        os.write(write_fd, b"go\n")
    except BaseException:
        _kill_group(proc.pid, signal.SIGKILL)
        raise
    finally:
        os.close(write_fd)
    return proc


async def beating(
    done: Awaitable[Any], deadline: float | None, progress: Callable[[], None]
) -> bool:
    """Wait for `done`, calling `progress` (a heartbeat) every HEARTBEAT_SECONDS; True
    when the attempt's deadline (monotonic) came first. `done` is left running then."""
    waiting = asyncio.ensure_future(done)
    while True:
        wait = HEARTBEAT_SECONDS
        if deadline is not None:
            wait = min(wait, max(deadline - time.monotonic(), 0.0))
        try:
            await asyncio.wait_for(asyncio.shield(waiting), wait)
            return False
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                return True
            progress()


def _program(name: str, path: str, cwd: str | None) -> str | None:
    """The executable `name` stands for, as exec would find it; None when there is none."""
    if "/" in name:
        full = os.path.join(cwd or os.getcwd(), name)
        return full if os.path.isfile(full) and os.access(full, os.X_OK) else None
    return shutil.which(name, path=path)


def _masked_lines(secrets: Resolver, lines: list[str]) -> list[str]:
    return str(secrets.mask("\n".join(lines))).split("\n") if lines else lines


def _progress(secrets: Resolver, request: StepRequest, out: Captured, err: Captured) -> None:
    """Heartbeat the output's latest lines (masked) for `qlrf-run logs --follow`."""
    beat(
        item=request.item,
        stdout_bytes=len(out),
        stderr_bytes=len(err),
        stdout_lines=out.lines,
        stderr_lines=err.lines,
        # Masked as one text: a secret wrapped over two lines is masked too.
        stdout_tail=_masked_lines(secrets, out.tail()),
        stderr_tail=_masked_lines(secrets, err.tail()),
    )


@activity.defn(name=SHELL_ACTIVITY)
async def shell(request: StepRequest) -> StepResult:
    secrets = Resolver()
    params, script_env = await resolved(secrets, request)
    if "command" in params:
        argv = [str(a) for a in params["command"]]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", params["script"]]
    attempt = activity.info().attempt
    env = step_environment(request, params.get("env") or {}, script_env, attempt)
    cwd = params.get("cwd")
    refuse_nul(secrets, {"command": argv, "env": env, "cwd": cwd})
    if cwd is not None and not os.path.isdir(cwd):
        fail(secrets, "CommandNotFound", f"cannot run '{argv[0]}': no directory {cwd}")
    program = _program(argv[0], env["PATH"], cwd)
    if program is None:
        where = f" (cwd {cwd})" if cwd else ""
        fail(secrets, "CommandNotFound", f"cannot run '{argv[0]}'{where}: no such file or command")
    try:
        keep_in = request.run_id if params.get("keep_processes") else None
        proc = await _spawn([program, *argv[1:]], cwd, env, keep_in=keep_in)
    except FileNotFoundError as exc:
        missing = exc.filename or argv[0]
        where = f" (cwd {cwd})" if cwd else ""
        fail(secrets, "CommandNotFound", f"cannot run '{missing}'{where}: no such file or command")
    except PermissionError:
        fail(secrets, "CommandNotFound", f"cannot run '{argv[0]}': permission denied")
    out, err = Captured(), Captured()
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(capture(proc.stdout, out), capture(proc.stderr, err))
    deadline, grace = _deadline()
    try:
        timed_out = await beating(
            proc.wait(), deadline, lambda: _progress(secrets, request, out, err)
        )
        if timed_out:
            await _terminate(proc, grace)
        await readers
    except asyncio.CancelledError:
        await _terminate(proc)
        readers.cancel()
        raise
    finally:
        guardian().release(proc.pid)
    code = proc.returncode
    assert code is not None
    stdout, stderr = tail(bytes(out.data), secrets), tail(bytes(err.data), secrets)
    if timed_out:
        limit = activity.info().start_to_close_timeout
        fail(
            secrets,
            "CommandTimedOut",
            f"the command ran out of its {limit} start_to_close timeout and was stopped",
            stdout=stdout[-FAILED_OUTPUT:],
            stderr=stderr[-FAILED_OUTPUT:],
        )
    return ended(secrets, params, code, bytes(out.data), stdout, stderr)


def refuse_nul(secrets: Resolver, launched: JsonObject) -> None:
    """A NUL in what starts a process (its argv, environment, directory) cannot reach
    it: fail the step at once, and for good (another attempt would meet it again)."""
    where = nul_at(launched)
    if where is not None:
        fail(
            secrets,
            "InvalidCommand",
            f"the step's {where} holds a NUL character (\\0), which no process can be given; "
            "it usually comes from an earlier step's output: clean it there",
            retry=False,
        )


def ended(
    secrets: Resolver,
    params: JsonObject,
    code: int,
    raw: bytes,
    stdout: str,
    stderr: str,
    where: str = "",
) -> StepResult:
    """The result of a command that ran to its end (here or over ssh): CommandFailed on
    a non-zero exit, or stdout that is not JSON with `parse: json`. `where` prefixes
    the message (the host)."""
    if code != 0:
        last = stderr.strip().splitlines()[-5:] if stderr.strip() else []
        shown = "; ".join(last) or "(no stderr)"
        fail(
            secrets,
            "CommandFailed",
            f"{where}exit code {code}: {shown}",
            exit_code=code,
            stdout=stdout[-FAILED_OUTPUT:],
            stderr=stderr[-FAILED_OUTPUT:],
        )
    parsed = None
    if params.get("parse") == "json":
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            fail(
                secrets,
                "CommandFailed",
                f"{where}stdout is not JSON ({exc}); set parse: text or fix the command's output",
            )
    return result(secrets, {"exit_code": code, "stdout": stdout, "stderr": stderr, "json": parsed})
