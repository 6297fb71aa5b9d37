"""The run store's connection pool and its numbered SQL migrations.

Migrations run at start under a PostgreSQL advisory lock, so several workers
starting at once apply each one exactly once.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import asyncpg

# An arbitrary constant that names "qlrf-run migrations" among advisory locks.
MIGRATION_LOCK = 0x716C7266


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
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
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
