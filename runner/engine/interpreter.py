"""RunbookWorkflow: one workflow that interprets any plan, deterministically.

This module holds only the workflow's definition: `run`, the queries, and the
Update and signal handlers. Each delegates: the scheduler decides what runs next
(scheduler.py), the dispatcher runs a step (dispatch.py), the gate desk judges
decisions (gates.py), the outbox records to the run store (outbox.py).

Workflow code does no I/O and reads no clock or random source except through the
Temporal workflow API. Templates are rendered here; secrets stay references
until an activity resolves them on the worker.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from runner.contract import (
        BASIS_QUERY,
        CONTROL,
        DECIDE,
        DECLARATIONS_QUERY,
        LOCK_NEWS,
        STATE_QUERY,
        WORKFLOW_TYPE,
        RunInput,
    )
    from runner.contract.messages import Basis, ControlRequest, Decision, Declaration
    from runner.contract.state import ControlJson, Identity, RunView
    from runner.contract.vocab import AuditAction, DecisionKind, NotifyEvent, RunStatus
    from runner.contract.wire import payload_size, trust_mark
    from runner.engine import admission, control, identity, outcome, publish
    from runner.engine.dispatch import Dispatcher
    from runner.engine.evaluators import Evaluators
    from runner.engine.failures import StepFailed
    from runner.engine.gates import GateDesk
    from runner.engine.governance import POLICY, Governance
    from runner.engine.locking import RunLocks
    from runner.engine.notices import NOTIFY, Notices, routes_of
    from runner.engine.outbox import Outbox, RunWriter
    from runner.engine.publish import Publisher
    from runner.engine.run_state import RunState
    from runner.engine.scheduler import Scheduler
    from runner.plan import redrive as redriving
    from runner.times import iso
    from runner.trust import claims, internal

# Runs started from this version on follow the trigger rules after a failure, skip
# what never runs, record compensations, notify again after a modify and give the
# first wave of a campaign a budget of 0. Runs started earlier replay as they ran.
ENGINE_V2 = "qlrf-engine-2"
# Runs publish a live picture of themselves (memo and current details, publish.py),
# and a failed step keeps what it printed as its output. Runs started before replay
# without either: the publisher's memo writes and timer are not in their histories,
# and a template reading a failed step's output saw none
# (tests/golden/*.before-live.history.json).
LIVE_PICTURE = "qlrf-live-picture"
# Runs from this version on publish their picture in the workflow tasks they have
# anyway, with a timer only for quiet stretches (publish.py); asked right after
# LIVE_PICTURE, before the trust snapshot.
PUBLISH_WITH_TASKS = "qlrf-publish-with-tasks"
# A failed run keeps the outputs it can render (outcome.partial_outputs). Runs failed
# before replay with none.
OUTPUTS_ON_FAILURE = "qlrf-outputs-on-failure"


@workflow.defn(name=WORKFLOW_TYPE)
class RunbookWorkflow:
    def __init__(self) -> None:
        self._run: RunState | None = None
        self._desk: GateDesk | None = None
        self._dispatcher: Dispatcher | None = None
        self._scheduler: Scheduler | None = None
        self._outbox: Outbox | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._locks: RunLocks | None = None
        self._malformed: str | None = None  # why the run's input could not be read
        self._waited_ms = 0  # how long the run waited for its locks (from its timeout)
        self._trust = identity.Trust()
        self._started_verified = False
        self._authorized_by: str | None = None  # who signed the schedule of this run
        self._governance: Governance | None = None  # the worker's policy, from POLICY on
        self._provenance: dict[str, Any] | None = None  # where the runbook came from

    # -- queries ----------------------------------------------------------------------

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        """The status JSON (`qlrf-run status --format json`)."""
        return self.view().to_json()

    def view(self) -> RunView:
        """The run as people see it, built from what it knows now (no clock, no I/O)."""
        info = workflow.info()
        # `run_id` is what every command takes as RUN (the workflow id); Temporal's own
        # id of this execution is `temporal_run_id`.
        view = RunView(run_id=info.workflow_id, temporal_run_id=info.run_id)
        run, desk, dispatcher = self._run, self._desk, self._dispatcher
        if self._malformed is not None:
            view.status = RunStatus.FAILED
            view.error = {"type": "InvalidRunInput", "message": self._malformed, "step": None}
            return view
        if run is None or desk is None or dispatcher is None:
            return view
        view.name, view.kind = run.plan.name, run.plan.kind
        view.status, view.started_by = run.status, run.started_by
        view.started_at, view.finished_at = iso(run.started_at), iso(run.finished_at)
        view.inputs = run.inputs
        # What a signed decision or control action binds (runner/trust/claims.py).
        view.identity = Identity(
            mode=self._trust.mode,
            trust_sha256=self._trust.sha256,
            started_by_verified=self._started_verified,
        )
        view.plan_hash = run.plan.plan_hash
        view.inputs_hash = claims.inputs_hash(run.inputs)
        campaigns = dispatcher.campaigns
        view.steps = {
            sid: step.view(campaigns[sid].view() if sid in campaigns else None)
            for sid, step in run.steps.items()
        }
        view.gates = [g.view() for g in desk.gates.values()]
        view.paused, view.controls = run.paused, run.controls
        view.locks = [hold.view() for hold in run.locks.values()]
        view.redrive_of, view.outputs, view.error = run.redrive_of, run.outputs, run.error
        view.provenance = self._provenance
        view.policy = self._governance.view() if self._governance is not None else None
        # Events not yet in the run store: a run that ended waits for them to be
        # written before it closes, so a store that is down shows here.
        view.store_backlog = len(self._outbox.events) if self._outbox is not None else 0
        return view

    @workflow.query(name=BASIS_QUERY)
    def basis(self) -> dict[str, Any]:
        """What a signer binds, as the run checks it now (contract.messages.Basis)."""
        run, desk = self._run, self._desk
        if run is None or desk is None:
            raise ApplicationError("the run is starting; try again in a moment")
        info = workflow.info()
        return Basis(
            run_id=info.workflow_id,
            temporal_run_id=info.run_id,
            plan_hash=run.plan.plan_hash,
            inputs_hash=claims.inputs_hash(run.inputs),
            mode=self._trust.mode,
            rounds={name: len(gate.modifications) for name, gate in desk.gates.items()},
            declarations=run.declarations,
        ).to_json()

    @workflow.query(name=DECLARATIONS_QUERY)
    def declarations(self) -> dict[str, Declaration]:
        """The run's input declarations, so `modify --set k=v` can convert v by its type."""
        return self._run.declarations if self._run is not None else {}

    # -- the run ----------------------------------------------------------------------

    @workflow.run
    async def run(self, request: RunInput) -> Any:
        admitted, malformed = admission.admitted_plan(request)
        if admitted is None:
            # Nothing can run, or be recorded, from an input that does not read.
            self._malformed = malformed
            raise ApplicationError(
                f"{malformed}; start runs with qlrf-run apply, or send a RunInput as it does",
                type="InvalidRunInput",
                non_retryable=True,
            )
        plan = admitted
        legacy = not workflow.patched(ENGINE_V2)
        info = workflow.info()
        # Asked before the trust snapshot, as runs before it asked it: a patch asked
        # after awaiting a local activity may land in another workflow task on replay.
        live = not legacy and workflow.patched(LIVE_PICTURE)
        with_tasks = live and workflow.patched(PUBLISH_WITH_TASKS)
        started_by, groups, unauthenticated = request.started_by, request.groups, None
        trust_era = not legacy and workflow.patched(identity.TRUST)
        start_once = trust_era and workflow.patched(identity.START_ONCE)
        notifying = start_once and workflow.patched(NOTIFY)
        governed = notifying and workflow.patched(POLICY)
        if trust_era:
            started_by, groups, unauthenticated = await self._authenticate(
                request, plan, start_once
            )
        redrive, redrive_refused = request.redrive, None
        if start_once:
            redrive, refusal = await self._admit(request, plan, unauthenticated)
            if refusal is not None and refusal.startswith(claims.UNPROVEN):
                unauthenticated = unauthenticated or refusal
            elif refusal is not None:
                redrive_refused = refusal
        else:
            redrive_refused = admission.redrive_problem(plan, request.redrive)
            redrive = request.redrive if redrive_refused is None else None
        # In signed mode the run is recorded whatever its input says: the record is
        # what proves who did what, and signed mode runs with the store.
        if governed:
            self._provenance, problem = _provenance(request.provenance)
            unauthenticated = unauthenticated or problem
        record = bool(request.record) or (start_once and self._trust.signed)
        run = self._run = RunState(
            plan, request.inputs, started_by, groups, info.workflow_id, workflow.now(), redrive
        )
        outbox = self._outbox = Outbox(record, workflow.now)
        writer = RunWriter(outbox, info.run_id) if record else None
        desk = self._desk = GateDesk(run)
        if governed and self._trust.signed and self._trust.policy is not None:
            governance = self._governance = Governance.of(
                self._trust.policy, plan, self._provenance, run.started_by, run.groups
            )
            desk.policy = governance.decision_problem

        def gate_opened() -> None:
            if writer is not None:
                writer.flush_now = True  # a waiting gate should be visible in the store at once

        evaluators = Evaluators(run, desk, outbox, gate_opened, legacy=legacy)
        notices = None
        if notifying:
            worker_notify = self._trust.notify or {}
            notices = Notices(
                routes_of(worker_notify.get("routes") or {}, plan.notify),
                outbox,
                lock_after_ms=worker_notify.get("lock_notify_after_ms"),
            )
            evaluators.notices = notices
        dispatcher = self._dispatcher = Dispatcher(run, outbox, writer, evaluators, legacy=legacy)
        dispatcher.trust_era = trust_era
        if trust_era:
            dispatcher.trust = trust_mark(self._trust.mode, self._trust.sha256)
        locks = self._locks = dispatcher.locks = RunLocks(
            run,
            outbox,
            lambda: publish.waiting(desk, run, changed_only=True),
            authenticated=start_once,
        )
        dispatcher.authenticated = start_once
        locks.notices = dispatcher.notices = notices
        scheduler = self._scheduler = Scheduler(
            plan.nodes, plan.finally_nodes, run.run_limit, dispatcher, legacy=legacy
        )
        flusher = None
        if writer is not None:
            writer.run_row = self._run_row(request)
            started: dict[str, Any] = {"inputs": run.inputs, "verified": self._started_verified}
            if self._trust.signed:
                started["trust_sha256"] = self._trust.sha256
            if self._authorized_by:
                started["authorized_by"] = self._authorized_by
            if run.redrive_of:
                started["redrive_of"] = run.redrive_of
            if self._provenance is not None:
                started["provenance"] = self._provenance
            if self._governance is not None:
                started["policy"] = self._governance.view()
            outbox.audit("run_started", run.started_by, started)
            flusher = asyncio.create_task(writer.loop())
        publisher = None
        if live:
            dispatcher.failed_output = True
            publisher = Publisher(run, desk, self.view)
            publisher.with_tasks = with_tasks
            self._publisher = asyncio.create_task(publisher.loop())
        refused = None if legacy else admission.input_problem(plan, request.inputs)
        refused_as = "InvalidInputs"
        if refused is None and redrive_refused is not None:
            refused = redrive_refused
            refused_as = "RedriveRefused" if start_once else "InvalidInputs"
        if unauthenticated is not None:
            # Nothing runs for a start nobody proved: not a step, not finally.
            refused, refused_as = unauthenticated, "Unauthenticated"
        # A child run's parent tells of the run; the child tells only of its gates.
        own_run = info.parent is None
        gov = self._governance
        if refused is None and gov is not None:
            dispatcher.governance = gov
            refused = gov.start_problem(
                run.started_by, self._provenance, redrive=bool(run.redrive_of), child=not own_run
            )
            if refused is None and own_run:
                refused = gov.proposal_problem(plan, run.context())
            refused_as = "PolicyRefused"
        if refused is None and notices is not None and own_run:
            notices.send(NotifyEvent.RUN_STARTED, self._run_facts())
        if refused is None and gov is not None and own_run:
            # Outside its windows, at break glass; a proposal, at the policy's gate.
            refused = await gov.gates(evaluators.open_gate, workflow.now())
            refused_as = "PolicyRefused"
        run_keys: list[str] = []
        if refused is None and plan.locks:
            try:
                run_keys = locks.keys(plan.locks, None)
            except StepFailed as exc:
                refused, refused_as = exc.message, exc.error_type
        cancelled = False
        if refused is not None:
            # Nothing runs, finally neither: what the run was asked to do is not valid.
            outbox.audit("run_refused", None, {"reason": refused})
            for sid in run.steps:
                dispatcher.skip(run.nodes[sid], "the run was refused before its first step")
            outcome.refuse(run, refused_as, refused, now=workflow.now())
        elif (ended := await self._run_locks(run_keys)) is not None:
            # Cancelled or timed out in line for its locks: nothing ran, so nothing is
            # compensated and finally has nothing to clean up.
            cancelled = ended == "cancelled"
            for sid in run.steps:
                dispatcher.skip(run.nodes[sid], f"the run {ended} while waiting for its locks")
            outcome.conclude(run, None, cancelled=cancelled, now=workflow.now())
        else:
            cancelled = await self._steps(legacy)
            # Compensation and finally run whatever happened, including after a cancel:
            # the cancel was delivered once, and what is scheduled from here runs.
            if scheduler.failing:
                await dispatcher.compensate(scheduler.compensations())
            await scheduler.run_finally()
            failed = scheduler.failure is not None and not cancelled and run.status != "timed_out"
            outcome.conclude(
                run,
                scheduler.failure,
                cancelled=cancelled,
                now=workflow.now(),
                outputs_on_failure=failed and workflow.patched(OUTPUTS_ON_FAILURE),
            )
        if run_keys:
            locks.give_back(None)
        # Every lock given back has been told so before the run closes.
        await locks.settled()
        if publisher is not None and publisher.with_tasks:
            publish.final_state(self.state(), publisher.last_picture())
        else:
            if publisher is not None:
                publisher.publish()
            publish.final_state(self.state())
        if notices is not None:
            ended_as = {
                RunStatus.SUCCEEDED: NotifyEvent.RUN_SUCCEEDED,
                RunStatus.CANCELLED: NotifyEvent.RUN_CANCELLED,
            }.get(RunStatus(run.status), NotifyEvent.RUN_FAILED)
            if own_run:
                notices.send(ended_as, self._run_facts())
            # Nothing scheduled is dropped: the run closes once each delivery has ended.
            await notices.settled()
        # A control or decision still being handled finishes before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if writer is not None and flusher is not None:
            # Nothing is lost: the run ends only once the store has every event.
            writer.run_row = self._run_row(request)
            outbox.audit("run_finished", None, {"status": run.status, "error": run.error})
            writer.closing = True
            await flusher
        if cancelled:
            raise asyncio.CancelledError()
        if run.status != "succeeded":
            assert run.error is not None
            raise ApplicationError(
                run.error["message"],
                {"status": run.status, "step": run.error.get("step")},
                type=run.error["type"],
                non_retryable=True,
            )
        return run.outputs

    async def _admit(
        self, request: RunInput, plan: Any, unauthenticated: str | None
    ) -> tuple[Any, str | None]:
        """The worker's word on the start (engine/identity.py admit): (what a redrive
        keeps, or None; why the start is refused, or None). Asked only of what needs it:
        a signed start (its nonce is spent for good), a schedule's run, a redrive."""
        if unauthenticated is not None or workflow.info().parent is not None:
            return None, None
        proof = request.proof if isinstance(request.proof, dict) else {}
        schedule = proof.get("schedule") if self._trust.signed else None
        nonce = proof.get("nonce") if self._trust.signed and not schedule else None
        if request.redrive is None and not nonce and not schedule:
            return None, None
        if schedule and request.redrive is not None:
            return None, f"{claims.UNPROVEN}: a schedule's run continues no other run"
        info = workflow.info()
        answer = await identity.admit(
            {
                "workflow_id": info.workflow_id,
                "temporal_run_id": info.run_id,
                "plan_hash": plan.plan_hash,
                "nonce": nonce,
                "schedule": schedule,
                "redrive": request.redrive,
                "shape": redriving.shape(plan) if request.redrive is not None else None,
            }
        )
        refused = answer.get("refused")
        if isinstance(refused, str) and refused:
            return None, refused
        redrive = answer.get("redrive")
        problem = admission.redrive_problem(plan, redrive)
        if problem is not None:
            return None, problem
        return redrive, None

    async def _authenticate(
        self, request: RunInput, plan: Any, start_once: bool = False
    ) -> tuple[str, dict[str, list[str]], str | None]:
        """Take the trust snapshot and check the start: (started_by, groups, why the
        start is refused or None). In claimed mode, what the request says. From
        START_ONCE on, a redrive's signature covers what it continues."""
        trust = self._trust = await identity.snapshot()
        if not trust.signed:
            return request.started_by, request.groups, None
        groups = trust.groups or {}
        if trust.problem is not None:
            return str(request.started_by), groups, trust.problem
        info = workflow.info()
        if info.parent is not None:
            # A `runbook` step's child: its parent run checked who started it, and says so
            # with the workers' key (a workflow of anyone else's could be its parent).
            given = request.proof.get("parent") if isinstance(request.proof, dict) else None
            vouched = internal.child_proof(info.workflow_id, plan.plan_hash, request.inputs)
            if start_once and not (isinstance(given, str) and given == vouched):
                return (
                    str(request.started_by),
                    groups,
                    (
                        f"{claims.UNPROVEN}: a child run is started by its qlrf-run parent, "
                        "which vouches for it"
                    ),
                )
            self._started_verified = True
            return request.started_by, groups, None
        proof = request.proof
        schedule = proof.get("schedule") if isinstance(proof, dict) else None
        if isinstance(schedule, str) and schedule:
            return self._scheduled(request, plan, schedule, groups)
        redrive = request.redrive if start_once else None
        expected = claims.start_claim(
            info.workflow_id, plan.plan_hash, request.inputs, redrive, request.provenance
        )
        try:
            principal = trust.verify(request.proof, expected)
        except claims.Unauthenticated as exc:
            return str(request.started_by), groups, f"the start is not proven: {exc}"
        trust.spend(request.proof)
        self._started_verified = True
        return principal, groups, None

    def _scheduled(
        self, request: RunInput, plan: Any, schedule: str, groups: dict[str, list[str]]
    ) -> tuple[str, dict[str, list[str]], str | None]:
        """A run a schedule started: the schedule's signature (made by `schedule create`
        or `update`) stands for this plan with these inputs, on this schedule."""
        started_by = f"schedule:{schedule}"
        if request.started_by != started_by or not workflow.info().workflow_id.startswith(
            f"{plan.name}-{schedule}-"
        ):
            return (
                str(request.started_by),
                groups,
                "the start is not proven: not that schedule's run",
            )
        expected = claims.schedule_claim(schedule, plan.plan_hash, request.inputs)
        try:
            self._authorized_by = self._trust.verify(request.proof, expected, window=False)
        except claims.Unauthenticated as exc:
            return started_by, groups, f"the start is not proven: {exc}"
        self._started_verified = True
        return started_by, groups, None

    async def _run_locks(self, keys: list[str]) -> str | None:
        """Hold the run's own locks before its first step. None once they are held;
        "cancelled" or "timed out" when the run ended in line (what it asked for is
        given back)."""
        run, locks, outbox = self._run, self._locks, self._outbox
        assert run is not None and locks is not None and outbox is not None
        if not keys:
            return None
        taking = asyncio.create_task(locks.take(keys, None))
        timeout_ms = run.plan.timeout_ms
        try:
            await workflow.wait_condition(
                taking.done,
                timeout=timedelta(milliseconds=timeout_ms) if timeout_ms else None,
                timeout_summary="run timeout" if timeout_ms else None,
            )
        except asyncio.CancelledError:
            outbox.audit("cancel_requested", None, {})
            taking.cancel()
            await asyncio.wait([taking])
            return "cancelled"
        except builtins.TimeoutError:
            outcome.timed_out(run)
            taking.cancel()
            await asyncio.wait([taking])
            return "timed out"
        await taking
        self._waited_ms = int((workflow.now() - run.started_at).total_seconds() * 1000)
        return None

    async def _steps(self, legacy: bool) -> bool:
        """Run the steps' section to its end; True when the run was cancelled."""
        run, scheduler, outbox = self._run, self._scheduler, self._outbox
        assert run is not None and scheduler is not None and outbox is not None
        main: asyncio.Task[None] | None = None
        try:
            if legacy and run.plan.timeout_ms is None:
                # As runs before ENGINE_V2 did: a cancel ends the steps' section at once.
                await scheduler.run_steps()
            else:
                main = asyncio.create_task(scheduler.run_steps())
                await self._until_done(main)
        except asyncio.CancelledError:
            outbox.audit("cancel_requested", None, {})
            run.status = "cancelled"
            run.paused = False  # a cancel stops everything; compensation and finally run
            scheduler.halt("the run was cancelled")
            await scheduler.stop("the run was cancelled", force=True)
            if main is not None:
                await main
            return True
        return False

    async def _until_done(self, main: asyncio.Task[None]) -> None:
        """Wait for the steps' section, or for the run's deadline."""
        run, scheduler = self._run, self._scheduler
        assert run is not None and scheduler is not None
        timeout_ms = run.plan.timeout_ms
        if not timeout_ms:
            await workflow.wait_condition(main.done)
            return
        # The run's timeout counts from its start, including any wait for its locks.
        timeout_ms = max(timeout_ms - self._waited_ms, 1)
        try:
            await workflow.wait_condition(
                main.done, timeout=timedelta(milliseconds=timeout_ms), timeout_summary="run timeout"
            )
        except builtins.TimeoutError:
            outcome.timed_out(run)
            run.paused = False
            scheduler.halt("the run timed out")
            await scheduler.stop("the run timed out", force=True)
        if not scheduler.legacy:
            # A cancel arriving now must not cancel the section: it still has to skip
            # what will never run.
            await workflow.wait_condition(main.done)
        await main

    def _run_facts(self) -> dict[str, Any]:
        """What a run's notification says of it."""
        run = self._run
        assert run is not None
        return {
            "name": run.plan.name,
            "kind": run.plan.kind,
            "started_by": run.started_by,
            "status": run.status,
            "error": run.error,
        }

    def _run_row(self, request: RunInput) -> dict[str, Any]:
        """The run store's `runs` row."""
        run = self._run
        assert run is not None
        info = workflow.info()
        return {
            "run_id": info.run_id,
            "workflow_id": info.workflow_id,
            "name": run.plan.name,
            "kind": run.plan.kind,
            "plan_hash": run.plan.plan_hash,
            "definition_file": request.definition_file,
            "definition_sha256": request.definition_sha256,
            "definition_text": request.definition_text,
            "inputs": run.inputs,
            "status": run.status,
            "started_by": run.started_by,
            "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at),
            "outputs": run.outputs,
            "error": run.error,
            "redrive_of": run.redrive_of,
        }

    # -- approval gates ---------------------------------------------------------------

    @workflow.update(name=DECIDE)
    async def decide(self, raw: Any) -> dict[str, Any]:
        """approve / reject / modify a waiting gate; the validator has already accepted it."""
        decision = Decision.parse(raw)
        assert not isinstance(decision, str)  # the validator refused it otherwise
        try:
            proven = self._proven(decision)  # again: a validator leaves nothing behind
        except claims.Unauthenticated as exc:
            raise ApplicationError(str(exc), type="Unauthenticated", non_retryable=True) from None
        return self._apply(proven)

    @decide.validator
    def _validate_decide(self, raw: Any) -> None:
        if self._desk is None:
            raise ApplicationError(
                "the run is starting", type="DecisionRefused", non_retryable=True
            )
        decision = Decision.parse(raw)
        if isinstance(decision, str):
            raise ApplicationError(decision, type="DecisionRefused", non_retryable=True)
        try:
            decision = self._proven(decision)
        except claims.Unauthenticated as exc:
            raise ApplicationError(str(exc), type="Unauthenticated", non_retryable=True) from None
        problem = self._desk.refusal(decision)
        if problem:
            raise ApplicationError(problem, type="DecisionRefused", non_retryable=True)

    @workflow.signal(name=DECIDE)
    def decide_signal(self, raw: Any) -> None:
        """The same decision for clients that can only signal: checked the same way."""
        desk = self._desk
        if desk is None:
            return
        decision = Decision.parse(raw)
        if isinstance(decision, str):
            desk.refuse(raw, decision, workflow.now())
            return
        try:
            proven = self._proven(decision)
        except claims.Unauthenticated as exc:
            desk.refuse(raw, str(exc), workflow.now())
            return
        except Exception as exc:  # a signal is never bounced: a hostile one must not
            # fail the workflow task (which Temporal retries for ever)
            desk.refuse(raw, f"malformed: {type(exc).__name__}", workflow.now())
            return
        problem = desk.refusal(proven)
        if problem is None:
            self._apply(proven)
        else:
            desk.refuse(raw, problem, workflow.now())

    def _ids(self) -> dict[str, str]:
        """What a signed decision or control binds of the run (runner/trust/claims.py)."""
        run = self._run
        assert run is not None
        info = workflow.info()
        return {
            "run_id": info.workflow_id,
            "temporal_run_id": info.run_id,
            "plan_hash": run.plan.plan_hash,
            "inputs_hash_now": claims.inputs_hash(run.inputs),
        }

    def _gate_round(self, gate_id: str) -> int | None:
        assert self._desk is not None
        gate = self._desk.gates.get(gate_id)
        return len(gate.modifications) if gate is not None else None

    def _proven(self, decision: Decision) -> Decision:
        """The decision with its verified principal as `by` in signed mode; as sent, so
        unverified, in claimed mode. claims.Unauthenticated when its signature does not
        prove it."""
        if not self._trust.signed:
            return decision
        expected = claims.decision_claim(
            decision.to_json(), round_=self._gate_round(decision.gate), **self._ids()
        )
        proof = dict(decision.proof) if decision.proof is not None else None
        who = self._trust.actor(proof, expected, decision.by or None)
        return decision.proven(who.principal, who.via)

    def _proven_control(self, request: ControlRequest) -> ControlRequest:
        if not self._trust.signed:
            return request
        expected = claims.control_claim(request.to_json(), **self._ids())
        proof = dict(request.proof) if request.proof is not None else None
        who = self._trust.actor(proof, expected, request.by or None)
        return request.proven(who.principal, who.via)

    def _apply(self, decision: Decision) -> dict[str, Any]:
        assert self._desk is not None and self._outbox is not None
        self._trust.spend(dict(decision.proof) if decision.proof is not None else None)
        gate, record = self._desk.apply(decision, workflow.now())
        detail = {
            "gate": gate.gate,
            "step": gate.step,
            "decision": record["decision"],
            "verified": record["verified"],
            "comment": record["comment"],
            "changes": record.get("changes"),
        }
        if record.get("via"):
            detail["via"] = record["via"]
        self._outbox.audit(AuditAction.GATE_DECIDED, record["by"], detail)
        if record["decision"] == DecisionKind.MODIFY:
            self._outbox.audit(
                AuditAction.INPUTS_MODIFIED,
                record["by"],
                {"gate": gate.gate, "changes": record["changes"]},
            )
        if self._scheduler is not None:
            self._scheduler.wake()
        return gate.view().to_json()

    # -- locks ------------------------------------------------------------------------

    @workflow.signal(name=LOCK_NEWS)
    def lock_news(self, news: Any) -> None:
        """A lock says whom the run waits behind, or that it holds the key now."""
        if self._locks is not None:
            self._locks.news(news)

    # -- live control -----------------------------------------------------------------

    @workflow.update(name=CONTROL)
    async def control(self, raw: Any) -> ControlJson:
        """pause / resume the run, or change a running fan-out; the validator accepted it."""
        run, dispatcher, outbox, scheduler = (
            self._run,
            self._dispatcher,
            self._outbox,
            self._scheduler,
        )
        assert run is not None and dispatcher is not None and outbox is not None
        assert scheduler is not None
        request = ControlRequest.parse(raw)
        assert not isinstance(request, str)  # the validator refused it otherwise
        try:
            request = self._proven_control(request)
        except claims.Unauthenticated as exc:
            raise ApplicationError(str(exc), type="Unauthenticated", non_retryable=True) from None
        if self._governance is not None:
            problem = self._governance.control_problem(request.by, str(request.action))
            if problem:
                raise ApplicationError(problem, type="ControlRefused", non_retryable=True)
        self._trust.spend(dict(request.proof) if request.proof is not None else None)
        record = await control.apply(
            request,
            run=run,
            campaigns=dispatcher.campaigns,
            concurrency_set=dispatcher.concurrency_set,
            audit=outbox.audit,
            at=iso(workflow.now()),
        )
        scheduler.wake()
        return record

    @control.validator
    def _validate_control(self, raw: Any) -> None:
        run, dispatcher = self._run, self._dispatcher
        if run is None or dispatcher is None:
            raise ApplicationError("the run is starting", type="ControlRefused", non_retryable=True)
        request = ControlRequest.parse(raw)
        if isinstance(request, str):
            raise ApplicationError(request, type="ControlRefused", non_retryable=True)
        try:
            request = self._proven_control(request)
        except claims.Unauthenticated as exc:
            raise ApplicationError(str(exc), type="Unauthenticated", non_retryable=True) from None
        if self._governance is not None:
            problem = self._governance.control_problem(request.by, str(request.action))
            if problem:
                raise ApplicationError(problem, type="ControlRefused", non_retryable=True)
        fanout = {sid: run.status_of(sid) for sid, node in run.nodes.items() if node.fanout}
        problem = control.refusal(
            request,
            run_status=run.status,
            paused=run.paused,
            fanout_steps=fanout,
            started={sid: c for sid, c in dispatcher.campaigns.items() if c.started},
            run_limit=run.run_limit,
        )
        if problem:
            raise ApplicationError(problem, type="ControlRefused", non_retryable=True)


# Provenance a start may carry: a mapping of a few texts, flags and names.
PROVENANCE_BYTES = 16 * 1024


def _provenance(given: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The start's provenance as the run keeps it, or why it does not read."""
    if given is None:
        return None, None
    if not isinstance(given, dict):
        return None, "the start's provenance is not a mapping"
    if payload_size(given) > PROVENANCE_BYTES:
        return None, f"the start's provenance is over {PROVENANCE_BYTES} bytes"
    return dict(given), None
