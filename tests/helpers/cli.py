"""Running the installed `qlrf-run` the way an operator does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
EXE = str(Path(sys.executable).with_name("qlrf-run"))


def qlrf(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `qlrf-run` console script; returns its exit code and output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [EXE, *args],
        cwd=cwd or ROOT,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker_process(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`qlrf-run worker` in a process of its own (to be stopped, or SIGKILLed)."""
    return subprocess.Popen(
        [EXE, "worker", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def detached(runbook: Path | str, env: dict[str, str], *args: str) -> str:
    """`apply RUNBOOK --detach` (with `args`): the id of the run it started."""
    import json

    started = qlrf("apply", str(runbook), *args, "--detach", "--format", "json", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    return str(json.loads(started.stdout)["run_id"])
