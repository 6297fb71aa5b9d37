"""Logging for the long-running commands: one line per record, never a traceback.

The Temporal SDK logs each failed activity attempt with its traceback; the step's
error type and message already say what failed (and are masked), so only the
message is kept. `notify` steps with channel log write to the `qlrf` logger.
"""

from __future__ import annotations

import logging
import sys


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


def configure(temporal_level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_NoTraceback())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("temporalio").setLevel(temporal_level)
    logging.getLogger("qlrf").setLevel(logging.INFO)
