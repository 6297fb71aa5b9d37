"""The `shell` activity: a command (argv, no shell) or a bash script, with heartbeats.

The process runs in its own session, so cancelling the step (or its timeout) kills
the whole process group: SIGTERM, then SIGKILL after a grace period. No orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from temporalio import activity

from runner.contract import StepRequest
from runner.steps.common import RESULT_LIMIT, beat, fail, result, tail
from runner.steps.secrets import Resolver

KILL_GRACE_SECONDS = 5.0
HEARTBEAT_SECONDS = 1.0


async def _read(stream: asyncio.StreamReader, sink: bytearray) -> None:
    while chunk := await stream.read(65536):
        sink.extend(chunk)
        if len(sink) > 2 * RESULT_LIMIT:  # keep memory bounded; only the tail is returned
            del sink[: len(sink) - RESULT_LIMIT]


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
    except TimeoutError:
        _kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Children that outlived the leader still belong to its process group.
    _kill_group(proc.pid, signal.SIGKILL)


@activity.defn(name="shell")
async def shell(request: StepRequest) -> dict[str, Any]:
    secrets = Resolver()
    params = secrets.resolve(request.params)
    script_env = secrets.resolve(request.script_env)
    if "command" in params:
        argv = [str(a) for a in params["command"]]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", params["script"]]
    env = {
        **os.environ,
        **{k: str(v) for k, v in (params.get("env") or {}).items()},
        **script_env,
        "QLRF_RUN_ID": request.run_id,
        "QLRF_STEP": request.step,
        "QLRF_ATTEMPT": str(activity.info().attempt),
    }
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=params.get("cwd"),
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        missing = exc.filename or argv[0]
        where = f" (cwd {params['cwd']})" if params.get("cwd") else ""
        fail(secrets, "CommandNotFound", f"cannot run '{missing}'{where}: no such file or command")
    except PermissionError:
        fail(secrets, "CommandNotFound", f"cannot run '{argv[0]}': permission denied")
    out, err = bytearray(), bytearray()
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(_read(proc.stdout, out), _read(proc.stderr, err))
    try:
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), HEARTBEAT_SECONDS)
                break
            except TimeoutError:
                beat(stdout_bytes=len(out), stderr_bytes=len(err))
        await readers
    except asyncio.CancelledError:
        await _terminate(proc)
        readers.cancel()
        raise
    code = proc.returncode
    stdout, stderr = tail(bytes(out)), tail(bytes(err))
    if code != 0:
        last = stderr.strip().splitlines()[-5:] if stderr.strip() else []
        shown = "; ".join(last) or "(no stderr)"
        fail(
            secrets,
            "CommandFailed",
            f"exit code {code}: {shown}",
            exit_code=code,
            stderr=stderr[-4000:],
        )
    parsed = None
    if params.get("parse") == "json":
        try:
            parsed = json.loads(bytes(out))
        except ValueError as exc:
            fail(
                secrets,
                "CommandFailed",
                f"stdout is not JSON ({exc}); set parse: text or fix the command's output",
            )
    return result(secrets, {"exit_code": code, "stdout": stdout, "stderr": stderr, "json": parsed})
