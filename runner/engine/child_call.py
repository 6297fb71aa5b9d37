"""Child workflows from workflow code: a `runbook` step's child run, a fan-out's batches.

What a child's failure becomes is decided here: a cancel stays a cancel, anything
else is StepFailed with the kind of child and its message.
"""

from __future__ import annotations

import asyncio

from temporalio.exceptions import CancelledError, ChildWorkflowError

from runner.engine.failures import StepFailed


def child_failure(exc: ChildWorkflowError, error_type: str, what: str) -> BaseException:
    """The exception to raise for a child that did not complete."""
    if isinstance(exc.cause, CancelledError):
        return asyncio.CancelledError()
    cause = exc.cause
    message = getattr(cause, "message", None) or str(cause or exc)
    return StepFailed(error_type, f"{what}: {message}", 1)
