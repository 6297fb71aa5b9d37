"""The run store's pool says in one line that PostgreSQL is away, never with a traceback."""

from __future__ import annotations

import logging

import runner.store.db  # noqa: F401  (installs the filter, as every use of the store does)
from runner.store.pool_log import POOL_LOGGER


def test_a_lost_postgresql_is_one_line_per_retry(caplog):
    logger = logging.getLogger(POOL_LOGGER)
    try:
        raise FileNotFoundError(2, "No such file or directory")
    except FileNotFoundError:
        with caplog.at_level(logging.WARNING, logger=POOL_LOGGER):
            # As asyncpg's pool logs it (asyncpg/pool.py, _maintain_min_size).
            logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
    [record] = caplog.records
    text = logging.Formatter().format(record)
    assert "Traceback" not in text and "\n" not in text
    assert "cannot reach PostgreSQL (FileNotFoundError" in text and "retrying" in text


def test_other_records_of_the_pool_are_left_alone(caplog):
    logger = logging.getLogger(POOL_LOGGER)
    with caplog.at_level(logging.WARNING, logger=POOL_LOGGER):
        logger.warning("Pool.close() is taking over 60 seconds to complete.")
    assert caplog.records[0].getMessage().startswith("Pool.close()")
