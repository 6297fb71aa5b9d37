"""Run one node of the plan: a fan-out, an in-workflow step, a child run or an activity.

The Dispatcher is the host the scheduler drives (runner/engine/scheduler.py) and
the host a campaign runs in (runner/engine/campaign.py). It keeps each step's
state and its run-store events; how a step type runs is read from the plan's
`runs_in` and capabilities, never from the type's name.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

from runner.contract import PAYLOAD_LIMIT, WORKFLOW_TYPE, RunInput, StepRequest, payload_size
from runner.contract.vocab import NotifyEvent
from runner.engine import control, metrics, render
from runner.engine.activity_call import call_activity, checked_timeouts
from runner.engine.campaign import Campaign
from runner.engine.child_call import child_failure
from runner.engine.evaluators import Evaluators
from runner.engine.failures import StepFailed
from runner.engine.governance import Governance
from runner.engine.locking import RunLocks
from runner.engine.notices import Notices
from runner.engine.outbox import Outbox, RunWriter
from runner.engine.run_state import RunState, StepState
from runner.engine.scheduler import StepEnd
from runner.errors import InputError
from runner.plan import inputs as run_inputs
from runner.plan.model import Node
from runner.times import iso
from runner.trust.internal import child_proof

# Why a step whose `when` rendered false was skipped (shown in status; runbook tests'
# coverage tells a `when` seen false by it).
WHEN_FALSE = "its `when` is false"


class Dispatcher:
    def __init__(
        self,
        run: RunState,
        outbox: Outbox,
        writer: RunWriter | None,
        evaluators: Evaluators,
        *,
        legacy: bool,
    ) -> None:
        self.run = run
        self.outbox = outbox
        self.writer = writer
        self.evaluators = evaluators
        self.legacy = legacy
        self.trust_era = False  # the run took the trust snapshot (engine/identity.py)
        self.notices: Notices | None = None  # runs from NOTIFY on (engine/notices.py)
        # The worker's policy (engine/governance.py), from POLICY on: a proposal's
        # commands are checked as they run, and each wave against the change windows.
        self.governance: Governance | None = None
        self.trust: str | None = None  # whom the run trusts: its steps' workers must too
        # The run authenticates what it tells its batches and child runs (START_ONCE).
        self.authenticated = False
        # A failed step keeps what its command printed as its output (runs started
        # with the live picture on; earlier ones had none, and templates may ask).
        self.failed_output = False
        self.campaigns: dict[str, Campaign] = {}
        self.concurrency_set: dict[str, int] = {}  # set before the fan-out started
        self.locks: RunLocks | None = None  # the run's locks, for steps with `locks:`

    # -- what the scheduler asks ------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.run.paused

    def knows(self, step_id: str) -> bool:
        return self.run.knows(step_id)

    def status_of(self, step_id: str) -> str:
        return self.run.status_of(step_id)

    def skip(self, node: Node, reason: str) -> None:
        state = self.run.skip(node.id, reason, workflow.now())
        self.run.touch()
        self._event(node.id, state, "skipped")
        metrics.step_ended(node.type, "skipped", None)

    def stopping(self, step_id: str, reason: str) -> None:
        self.run.steps[step_id].reason = reason

    async def wait(self, condition: Callable[[], bool], summary: str | None = None) -> None:
        await workflow.wait_condition(condition, timeout_summary=summary)

    async def run_step(self, node: Node, in_finally: bool) -> StepEnd:
        """Run one step to its end; a failure is returned, a cancel raised."""
        state = self.run.steps[node.id]
        if node.id in self.run.kept_steps and not in_finally:
            return self._kept(node, state)
        state.started_at = workflow.now()
        failure: StepFailed | None = None
        evicted = False
        locked = False
        try:
            when = node.when
            if when is not None and not render.truthy(render.render(when, self.run.context())):
                state.status = "skipped"
                state.reason = WHEN_FALSE
                return StepEnd("skipped")
            if node.locks and self.locks is not None:
                locked = True
                await self.locks.take(self.locks.keys(node.locks, node.id), node.id)
                state.started_at = workflow.now()  # the step starts once it holds its locks
            state.status = "running"
            state.attempts = 1
            self.run.touch()
            self._event(node.id, state, "started")
            state.output = await self._execute(node, state)
            state.status = "succeeded"
            return StepEnd("succeeded")
        except render.TemplateFailure as exc:
            failure = StepFailed("TemplateError", str(exc), state.attempts)
        except StepFailed as exc:
            failure = exc
        except asyncio.CancelledError:
            state.status = "cancelled"
            raise
        except Exception as exc:
            # Anything else raised here would fail the workflow task, which Temporal
            # retries forever: the run would hang in RUNNING. Fail the step instead.
            failure = StepFailed("InternalError", f"{type(exc).__name__}: {exc}", state.attempts)
        except GeneratorExit:
            # The worker evicted the run from its cache (it stops, or the cache is full):
            # the run goes on elsewhere from history, and no workflow call is allowed now.
            evicted = True
            raise
        finally:
            # A run dropped by its worker whose coroutine is closed later, outside the
            # workflow (by the garbage collector), may make no workflow call either.
            evicted = evicted or not workflow.in_workflow()
            if failure is not None:
                state.status = "failed"
                if failure.attempts is not None:
                    state.attempts = failure.attempts
                state.error = failure.as_error()
                if failure.output is not None and self.failed_output:
                    state.output = failure.output  # what a failed command printed
            if locked and not evicted and self.locks is not None:
                self.locks.give_back(node.id)
            if not evicted:
                state.finished_at = workflow.now()
                self.run.touch()
                self._event(node.id, state, state.status)
                metrics.step_ended(node.type, state.status, state.started_at)
        return StepEnd("failed", failure)

    def _kept(self, node: Node, state: StepState) -> StepEnd:
        """A redrive: the step succeeded in the run redriven, so it does not run again;
        its recorded output is what later steps see."""
        state.status = "succeeded"
        state.output = self.run.kept_steps[node.id]
        state.reason = f"succeeded in {self.run.redrive_of}; not run again"
        state.started_at = state.finished_at = workflow.now()
        self.run.touch()
        self._event(node.id, state, "succeeded")
        self.outbox.audit("step_kept", None, {"step": node.id, "from": self.run.redrive_of})
        return StepEnd("succeeded")

    # -- what a campaign asks ---------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.writer is not None

    def context(self, **loop: Any) -> Any:
        return self.run.context(**loop)

    def audit(self, action: str, actor: str | None, detail: dict[str, Any]) -> None:
        self.outbox.audit(action, actor, detail)

    def touch(self) -> None:
        self.run.touch()

    def kept_items(self, step_id: str) -> set[str]:
        return self.run.kept_items.get(step_id, set())

    def redriven_in_store(self, step_id: str) -> str | None:
        return self.run.redrive_of if step_id in self.run.redrive_paged else None

    async def open_gate(self, node: Node, params: dict[str, Any], gate_id: str) -> Any:
        return await self.evaluators.open_gate(node, params, gate_id)

    async def wave_window(self, node: Node, wave: str) -> None:
        """A wave starts inside the policy's windows, or after break glass; else the
        campaign stops before it."""
        if self.governance is None:
            return
        where = f"{node.id}/{wave}"
        problem = await self.governance.gates(self.evaluators.open_gate, workflow.now(), where)
        if problem is not None:
            raise StepFailed("PolicyRefused", problem, 1)

    def screen(self, step: str, params: Mapping[str, Any], env: Mapping[str, str]) -> None:
        if self.governance is not None:
            self.governance.screen(step, params, env)

    def budget_spent(self, node: Node, wave: str, failed: int, budget: int | None) -> None:
        if self.notices is not None:
            self.notices.send(
                NotifyEvent.WAVE_BUDGET_SPENT,
                {
                    "name": self.run.plan.name,
                    "step": node.id,
                    "wave": wave,
                    "failed": failed,
                    "budget": budget,
                    "started_by": self.run.started_by,
                },
                about=f"{node.id}/{wave}",
            )

    async def unpaused(self) -> None:
        if self.run.paused:
            await workflow.wait_condition(lambda: not self.run.paused, timeout_summary="paused")

    async def store_drained(self) -> None:
        if self.writer is not None:
            await self.writer.drained()

    # -- executing one node -----------------------------------------------------------

    async def _execute(self, node: Node, state: StepState) -> Any:
        if node.fanout is not None:
            return await self._fan_out(node, state)
        if node.runs_in == "workflow":
            return await self.evaluators.evaluate(node)
        if node.runs_in == "child_workflow":
            return await self._child(node)
        if node.capabilities.drains_store:
            if self.writer is None:
                raise StepFailed(
                    "EvidenceFailed",
                    f"a {node.type} step reads the run store, which is off for this run "
                    "(QLRF_STORE=off)",
                    1,
                )
            await self.writer.drained()  # the store holds every event up to this step
        return await self._activity(node, state, f"step:{node.id}", node.name)

    async def _fan_out(self, node: Node, state: StepState) -> Any:
        assert node.fanout is not None
        wanted = self.concurrency_set.get(node.id) or node.fanout.concurrency
        concurrency = control.fanout_concurrency(wanted, self.run.run_limit)
        campaign = Campaign(self, node, concurrency, legacy=self.legacy, names_items=self.trust_era)
        self.campaigns[node.id] = campaign
        try:
            return await campaign.execute()
        except (StepFailed, asyncio.CancelledError) as exc:
            # Rejected at a gate, over budget, cancelled: what was done is still the output.
            if campaign.started:
                cancelled = isinstance(exc, asyncio.CancelledError)
                state.output = campaign.stopped_output(cancelled=cancelled)
                if isinstance(exc, StepFailed):
                    exc.output = None  # a wave gate's decision is not the step's output
            raise

    async def _activity(self, node: Node, state: StepState, activity_id: str, summary: str) -> Any:
        rendered = render.step_params(
            node.with_, self.run.context(), node.capabilities.script, node.secrets
        )
        if self.governance is not None:
            self.governance.screen(node.id, rendered.params, rendered.script_env)
        timeouts = checked_timeouts(node.id, node.timeouts)
        request = StepRequest(
            workflow.info().workflow_id,
            node.id,
            rendered.params,
            rendered.script_env,
            secret_params=rendered.secret_params,
            secret_env=rendered.secret_env,
            trust=self.trust,
        )
        size = payload_size(request.params) + payload_size(request.script_env)
        if size > PAYLOAD_LIMIT:
            # Scheduling it would fail the workflow task (and hang the run) instead.
            raise StepFailed(
                "PayloadsTooLarge",
                f"the step's rendered parameters are {size} "
                f"bytes, over the {PAYLOAD_LIMIT}-byte limit",
                1,
            )
        assert node.activity is not None and node.retry is not None
        own_step = activity_id.startswith("step:")
        try:
            result = await call_activity(
                node.activity,
                request,
                activity_id=activity_id,
                summary=summary,
                retry=node.retry,
                timeouts=timeouts,
            )
        except StepFailed as failure:
            state.last_attempt_at = failure.started_at
            state.worker = failure.worker
            self._earlier_attempts(node.id, failure.earlier, compensation=not own_step)
            raise
        state.attempts = int(result.get("attempt", 1))
        state.last_attempt_at = result.get("started_at")
        state.worker = result.get("worker")
        self._earlier_attempts(node.id, result.get("failures") or [], compensation=not own_step)
        return result.get("output")

    def _earlier_attempts(
        self, step_id: str, failures: list[dict[str, Any]], *, compensation: bool
    ) -> None:
        """Record the attempts that failed before the last one, each with its own times."""
        if compensation and self.legacy:
            return
        status = "compensation_failed" if compensation else "failed"
        if not compensation:
            self.run.steps[step_id].failed_attempts = [
                {
                    "attempt": int(f.get("attempt") or 0),
                    "type": str(f.get("type")),
                    "message": str(f.get("message")),
                    "failed_at": f.get("failed_at"),
                    **({"worker": str(f["worker"])} if f.get("worker") else {}),
                }
                for f in failures
            ]
        for failure in failures:
            self.outbox.step(
                step_id,
                status,
                attempt=failure.get("attempt") or None,
                started_at=failure.get("started_at"),
                finished_at=failure.get("failed_at"),
                error={"type": str(failure["type"]), "message": str(failure["message"])},
                at=failure.get("failed_at"),
                worker=failure.get("worker"),
            )

    async def _child(self, node: Node) -> Any:
        child_plan = node.child
        if child_plan is None:
            raise StepFailed(
                "ChildRunFailed", "the child runbook was not compiled into the plan", 1
            )
        given = render.render(node.with_.get("inputs") or {}, self.run.context())
        try:
            values = run_inputs.resolve(child_plan.declarations(), given)
        except InputError as exc:
            raise StepFailed("InputError", f"child runbook inputs: {exc}", 1) from None
        child_id = f"{workflow.info().workflow_id}.{node.id}"
        request = RunInput(child_plan.to_dict(), values, self.run.started_by, "", self.run.groups)
        if self.authenticated:
            # Its start is its parent's word: a child run takes none other (interpreter.py).
            request.proof = {"parent": child_proof(child_id, child_plan.plan_hash, values)}
        try:
            return await workflow.execute_child_workflow(
                WORKFLOW_TYPE, request, id=child_id, static_summary=node.name
            )
        except ChildWorkflowError as exc:
            raise child_failure(exc, "ChildRunFailed", f"child run {child_id}") from None

    # -- compensation -----------------------------------------------------------------

    async def compensate(self, nodes: list[Node]) -> None:
        """Run the compensations of `nodes`, in that order; a failed one does not stop the rest."""
        for node in nodes:
            comp = node.compensate
            assert comp is not None
            state = self.run.steps[node.id]
            began = workflow.now()
            # Its times put its line in the progress after the failure that caused it.
            record: dict[str, Any] = {"status": "running", "error": None, "started_at": iso(began)}
            state.compensation = record
            shadow = dataclasses.replace(
                node,
                type=comp.type,
                runs_in=comp.runs_in,
                activity=comp.activity,
                name=comp.name,
                with_=comp.with_,
                retry=comp.retry,
                timeouts=comp.timeouts,
                capabilities=comp.capabilities,
                secrets=comp.secrets,
                fanout=None,
            )
            attempts = StepState(attempts=1)
            if not self.legacy:
                self.outbox.step(node.id, "compensation_started", attempt=1, started_at=iso(began))
            # A compensation undoes the step on what the step locked: it holds those too.
            scope = f"{node.id}:compensate"
            evicted = False
            try:
                if comp.runs_in != "activity":
                    raise StepFailed(
                        "StepTypeUnavailable", f"a {comp.type} step cannot compensate", 1
                    )
                if node.locks and self.locks is not None:
                    await self.locks.take(self.locks.keys(node.locks, node.id), scope)
                await self._activity(shadow, attempts, f"compensate:{node.id}", comp.name)
                record["status"] = "succeeded"
            except render.TemplateFailure as exc:
                record.update(status="failed", error={"type": "TemplateError", "message": str(exc)})
            except StepFailed as exc:
                if exc.attempts is not None:
                    attempts.attempts = exc.attempts
                record.update(status="failed", error=exc.as_error())
            except GeneratorExit:
                evicted = True  # dropped by its worker: no workflow call (see run_step)
                raise
            finally:
                if node.locks and self.locks is not None and not evicted:
                    self.locks.give_back(scope)
            record["finished_at"] = iso(workflow.now())
            if not self.legacy:
                self.outbox.step(
                    node.id,
                    f"compensation_{record['status']}",
                    attempt=attempts.attempts,
                    started_at=iso(began),
                    finished_at=iso(workflow.now()),
                    error=record["error"],
                )

    # -- the run store ----------------------------------------------------------------

    def _event(self, step_id: str, state: StepState, status: str) -> None:
        # The row of the step's outcome is that of its last attempt, with its own start.
        started = state.last_attempt_at if status != "started" else None
        self.outbox.step(
            step_id,
            status,
            attempt=state.attempts or None,
            started_at=started or iso(state.started_at),
            finished_at=iso(state.finished_at),
            output=state.output if status != "started" else None,
            error=state.error,
            worker=state.worker if status != "started" else None,
        )
