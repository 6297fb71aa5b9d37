"""Compiling a runbook and running it on a fresh worker and task queue, on a real server."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.waiting import eventually_async

RUN_TIMEOUT_SECONDS = 120  # a guard against hangs, not a speed check


@dataclass
class Outcome:
    state: dict[str, Any]
    result: Any
    error: BaseException | None
    workflow_id: str
    history_json: str

    def step(self, sid: str) -> dict[str, Any]:
        step: dict[str, Any] = self.state["steps"][sid]
        return step

    def history_text(self) -> str:
        """The history with every payload decoded: payload data is base64 in the JSON."""
        return decoded_history(self.history_json)


def decoded_history(history_json: str) -> str:
    parts = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    with contextlib.suppress(binascii.Error, ValueError):
                        parts.append(base64.b64decode(value).decode("utf-8", "replace"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(parts)


def write_runbook(tmp_path: Path, text: str, name: str = "runbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


async def run_runbook(
    address: str,
    path: Path,
    inputs: list[str] | None = None,
    *,
    overrides: dict[str, Callable[..., Any]] | None = None,
    while_running: Callable[[Any], Any] | None = None,
    client: Any = None,
    workflow_id: str | None = None,
    started_by: str = "tester",
    timeout: float = RUN_TIMEOUT_SECONDS,
) -> Outcome:
    """Compile `path`, run it on a worker of its own, and return the final state."""
    from temporalio.client import Client

    from runner.client import runs
    from runner.client import state as client_state
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    compiled = compile_file(path, inputs or [])
    client = client or await Client.connect(address)
    queue = f"test-{uuid.uuid4()}"
    wid = workflow_id or f"{compiled.plan.name}-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue=queue, activity_overrides=overrides):
        handle, _ = await runs.start(
            client, compiled.plan, compiled.inputs, started_by, workflow_id=wid, task_queue=queue
        )
        if while_running is not None:
            await while_running(handle)
        result, error = None, None
        try:
            result = await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            raise
        except Exception as exc:
            error = exc
        state = (await client_state.view_of(handle)).to_json()
    history = await handle.fetch_history()
    return Outcome(state, result, error, wid, history.to_json())


async def wait_for_step(handle: Any, step: str, status: str = "running") -> dict[str, Any]:
    """Poll the run's state until `step` has `status`; the state then."""

    async def reached() -> dict[str, Any] | None:
        state: dict[str, Any] = await handle.query("state")
        return state if state["steps"][step]["status"] == status else None

    return await eventually_async(
        reached,
        f"step {step} became {status}",
        RUN_TIMEOUT_SECONDS,
        poll=0.05,
        ignoring=(Exception,),  # no worker has the run yet
    )
