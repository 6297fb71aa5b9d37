"""One line, not a stack trace, when the run store's pool loses PostgreSQL.

asyncpg's pool keeps a floor of connections and, when PostgreSQL goes away, logs
"Failed to restore the pool connection floor; retrying" with the whole traceback on
every retry (1 s, 2 s, ... up to a minute apart): in an outage, a worker's log would
fill with stack traces. This filter rewrites that record to one line that says what
happened and that the pool is retrying; the retrying itself is asyncpg's.
"""

from __future__ import annotations

import logging

POOL_LOGGER = "asyncpg.pool"


class OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and "connection floor" in str(record.msg):
            error = record.exc_info[1]
            record.msg = (
                "the run store cannot reach PostgreSQL (%s: %s); its connection pool keeps "
                "retrying, and the runs' writes wait meanwhile"
            )
            record.args = (type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    logger = logging.getLogger(POOL_LOGGER)
    if not any(isinstance(f, OneLine) for f in logger.filters):
        logger.addFilter(OneLine())
