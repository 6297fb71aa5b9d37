"""How a step fails inside the workflow: a stable error type, a message, the attempts."""

from __future__ import annotations

from typing import Any

from runner.contract.state import ErrorJson

# Kept on the step and in the run's error, so an operator can read what happened.
ERROR_TEXT_LIMIT = 4000


class StepFailed(Exception):
    """A step failed: the error type operators see (CommandFailed, ApprovalRejected...)."""

    def __init__(
        self,
        error_type: str,
        message: str,
        attempts: int | None = None,
        earlier: list[dict[str, Any]] | None = None,
        started_at: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.attempts = attempts
        self.earlier = earlier or []  # failures of the attempts before the last one
        self.started_at = started_at  # when the last attempt began, if known
        self.output = output  # what the last attempt printed (exit code, stdout, stderr)
        self.worker: str | None = None  # pid@host of the worker of the last attempt

    def as_error(self) -> ErrorJson:
        error: ErrorJson = {"type": self.error_type, "message": self.message[:ERROR_TEXT_LIMIT]}
        if self.worker:
            error["worker"] = self.worker
        return error


class Refused(Exception):
    """The run refuses to go on with something it computed (outputs too large)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
