"""The hand-written Temporal workflow that the interpreter is measured against."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from runner.contract import StepRequest


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


@workflow.defn(name="bench.HandBatch")
class HandBatch:
    """One batch of hosts, `concurrency` at once: what a careful engineer writes by hand."""

    @workflow.run
    async def run(self, hosts: list[str], first: int, concurrency: int) -> dict[str, int]:
        import asyncio

        slots = asyncio.Semaphore(concurrency)
        failed = 0

        async def one(i: int, host: str) -> None:
            nonlocal failed
            async with slots:
                try:
                    await workflow.execute_activity(
                        "shell",
                        StepRequest(workflow.info().workflow_id, "noop", {"command": ["true"]}),
                        activity_id=f"step:noop:{first + i}",
                        start_to_close_timeout=timedelta(minutes=1),
                    )
                except Exception:
                    failed += 1

        await asyncio.gather(*(one(i, h) for i, h in enumerate(hosts)))
        return {"succeeded": len(hosts) - failed, "failed": failed}


@workflow.defn(name="bench.HandFanout")
class HandFanout:
    """The parent: one child per batch of 1,000 hosts, one after another, summed up."""

    @workflow.run
    async def run(self, hosts: list[str], concurrency: int) -> dict[str, int]:
        total = {"succeeded": 0, "failed": 0}
        for n, first in enumerate(range(0, len(hosts), 1000), start=1):
            result = await workflow.execute_child_workflow(
                HandBatch.run,
                args=[hosts[first : first + 1000], first, concurrency],
                id=f"{workflow.info().workflow_id}.{n}",
            )
            for key in total:
                total[key] += result[key]
        return total
