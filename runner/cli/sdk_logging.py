"""Logging for the commands: one line per record, never a traceback, SDK noise off.

The Temporal SDK logs each failed activity attempt with its traceback, and its core
repeats warnings every few seconds while something retries. The progress lines
already say what failed (masked), so commands that follow a run keep the SDK quiet
unless asked with `-v` (warnings) or `-vv` (everything). `notify` steps with channel
log write to the `qlrf` logger, which is always shown.
"""

from __future__ import annotations

import logging
import sys

_verbosity = 0


def set_verbosity(count: int) -> None:
    global _verbosity
    _verbosity = count


def sdk_level(default: int) -> int:
    """The level of the Temporal SDK's loggers: `default`, or louder with -v, -vv."""
    if _verbosity >= 2:
        return logging.DEBUG
    if _verbosity == 1:
        return min(default, logging.WARNING)
    return default


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


class _CancelledWatchDone(logging.Filter):
    """The SDK's core warns when an activity whose cancel the workflow did not wait for
    (TRY_CANCEL: a lock's watch of its holder, runner/engine/lock.py) ends afterwards.
    That is the expected end of every lock hand-off, not something to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Activity not found on completion" not in record.getMessage()


def configure(sdk_default: int = logging.CRITICAL, *, gate_notices: bool = True) -> None:
    """Log to stderr; the SDK at `sdk_default` unless -v asked for more. Without
    `gate_notices`, the worker's notices of waiting gates are left out (the progress
    lines of `apply` announce each gate already)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_NoTraceback())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("temporalio").setLevel(sdk_level(sdk_default))
    core = logging.getLogger("temporalio.core")
    if not any(isinstance(f, _CancelledWatchDone) for f in core.filters):
        core.addFilter(_CancelledWatchDone())
    logging.getLogger("qlrf").setLevel(logging.INFO)
    if not gate_notices:
        logging.getLogger("qlrf.gates").setLevel(logging.ERROR)
        # A `notify` step of channel `log` run by apply's own worker: a line of the
        # progress, not a worker's log record with its time and logger name.
        notices = logging.getLogger("qlrf.notify")
        said = logging.StreamHandler(sys.stderr)
        said.setFormatter(logging.Formatter("  notify: %(message)s"))
        notices.handlers[:] = [said]
        notices.propagate = False
