"""The value hunt: look for a secret, and the forms it may be printed in, everywhere a
run leaves text (Temporal history, the run store, a worker's log, the CLI's output)."""

from __future__ import annotations

import base64
import urllib.parse

from tests.helpers.runs import decoded_history


def encodings(value: str) -> list[str]:
    """The value, reversed, base64, URL-encoded and hex."""
    raw = value.encode()
    return [
        value,
        value[::-1],
        base64.b64encode(raw).decode(),
        urllib.parse.quote(value, safe=""),
        raw.hex(),
    ]


async def recorded(temporal_address: str, postgres_uri: str, rid: str) -> str:
    """Everything Temporal and the run store hold of run `rid`, as text."""
    import asyncpg
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    history = await client.get_workflow_handle(rid).fetch_history()
    connection = await asyncpg.connect(postgres_uri)
    try:
        rows = await connection.fetch(
            "SELECT e.* FROM step_events e JOIN runs r ON r.run_id = e.run_id "
            "WHERE r.workflow_id = $1",
            rid,
        )
        audit = await connection.fetch(
            "SELECT a.* FROM audit_log a JOIN runs r ON r.run_id = a.run_id "
            "WHERE r.workflow_id = $1",
            rid,
        )
        run = await connection.fetch("SELECT * FROM runs WHERE workflow_id = $1", rid)
    finally:
        await connection.close()
    return "\n".join(
        [decoded_history(history.to_json()), *map(str, rows), *map(str, audit), str(run)]
    )


def found_in(places: dict[str, str], *values: str) -> list[str]:
    """Where any form of any of `values` appears: [] when nowhere."""
    return [
        f"{form!r} in {where}"
        for where, text in places.items()
        for value in values
        for form in encodings(value)
        if form in text
    ]
