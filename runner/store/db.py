"""The run store's connection pool and its numbered SQL migrations.

Migrations run at start under a PostgreSQL advisory lock, so several workers
starting at once apply each one exactly once.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import asyncpg

from runner.store import pool_log

pool_log.install()  # a lost PostgreSQL is one line per retry, not a traceback

# A row of the run store, by column name (asyncpg's Record, as a dict): the tables'
# columns are the migrations' (runner/store/migrations/).
Row = dict[str, Any]
# An arbitrary constant that names "qlrf-run migrations" among advisory locks.
MIGRATION_LOCK = 0x716C7266

# PostgreSQL's jsonb cannot hold a NUL character, nor half of a surrogate pair, which a
# step's output may well contain (a command that prints `a\0b`, JSON with "\ud800").
# Such a value is kept whole as its JSON text under ESCAPED, and read back as it was;
# so is a mapping that happens to use that key, so that reading is never ambiguous.
ESCAPED = "$qlrf_escaped"
_UNSTORABLE = re.compile(
    r"\\u0000"
    r"|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})"
    r"|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)


# In a Python string any code point of the surrogate range stands alone.
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def encode_json(value: Any) -> str:
    """A value as the JSON text PostgreSQL stores: escaped when jsonb could not hold it."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:  # NaN or an infinity (JSON parsed from a step's output may hold one)
        return json.dumps({ESCAPED: json.dumps(value)})
    if _UNSTORABLE.search(text) or (isinstance(value, dict) and ESCAPED in value):
        return json.dumps({ESCAPED: text})
    return text


def decode_json(text: str) -> Any:
    """The value encode_json stored, as it was."""
    value = json.loads(text)
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(ESCAPED), str):
        return json.loads(value[ESCAPED])
    return value


def storable_text(value: Any) -> Any:
    """Text for a text column: NUL and lone surrogates, which PostgreSQL refuses, become
    U+FFFD (such text is a name or a message, shown to people). Anything else as is."""
    if not isinstance(value, str):
        return value
    return _UNSTORABLE_TEXT.sub("\ufffd", value)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in runner/store/migrations, in order."""
    found = []
    for entry in resources.files("runner.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def _init_connection(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind, encoder=encode_json, decoder=decode_json, schema="pg_catalog"
        )


async def connect(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, timeout=10
    )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the migrations this database lacks; returns the versions applied now."""
    applied: list[int] = []
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["version"]
                for r in await connection.fetch("SELECT version FROM schema_migrations")
            }
            for version, name, sql in migrations():
                if version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                applied.append(version)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied


async def open_store(dsn: str, **kwargs: Any) -> asyncpg.Pool:
    """A pool on a migrated database."""
    pool = await connect(dsn, **kwargs)
    await migrate(pool)
    return pool
