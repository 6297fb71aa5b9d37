"""The hand-written Temporal workflow that the interpreter is measured against."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from runner.engine.model import StepRequest


@workflow.defn(name="bench.Handwritten")
class Handwritten:
    """Ten sequential calls of the same activity the runbook's steps use."""

    @workflow.run
    async def run(self, steps: int) -> int:
        for i in range(steps):
            await workflow.execute_activity(
                "shell",
                StepRequest(workflow.info().workflow_id, f"s{i}", {"command": ["true"]}),
                activity_id=f"step:s{i}",
                start_to_close_timeout=timedelta(minutes=1),
            )
        return steps
