"""The `evidence` activity. The bundle is built from the run store, which is not part of
this version yet, so the step fails at once with a clear, non-retryable error."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.engine.model import StepRequest


@activity.defn(name="evidence")
async def evidence(request: StepRequest) -> dict[str, Any]:
    raise ApplicationError(
        "the evidence step needs the run store, which this version of qlrf-run does not "
        "have yet; remove the step or run it with a later version",
        {"attempt": activity.info().attempt},
        type="EvidenceFailed",
        non_retryable=True,
    )
