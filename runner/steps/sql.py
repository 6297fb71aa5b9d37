"""The `sql` activity: one query against PostgreSQL, with bound parameters."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from temporalio import activity

from runner.contract import SQL_ACTIVITY, StepRequest, StepResult
from runner.steps.common import fail, resolved, result
from runner.steps.secrets import Resolver


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


@activity.defn(name=SQL_ACTIVITY)
async def sql(request: StepRequest) -> StepResult:
    secrets = Resolver()
    params, _ = await resolved(secrets, request)
    try:
        connection = await asyncpg.connect(params["dsn"], timeout=30)
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InvalidAuthorizationSpecificationError,
        asyncpg.InvalidCatalogNameError,
    ) as exc:
        fail(secrets, "SQLConnectionError", f"cannot connect: {type(exc).__name__}: {exc}")
    try:
        statement = await connection.prepare(params["query"])
        rows = await statement.fetch(*(params.get("params") or []))
        status = statement.get_statusmsg() or ""
    except asyncpg.PostgresError as exc:
        fail(secrets, "SQLError", f"{type(exc).__name__}: {exc}")
    finally:
        await connection.close()
    count = len(rows)
    if status and status.split()[-1].isdigit() and not rows:
        count = int(status.split()[-1])
    data = [{k: _jsonable(v) for k, v in dict(row).items()} for row in rows]
    return result(secrets, {"rows": data, "rowcount": count})
