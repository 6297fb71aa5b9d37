"""RunbookWorkflow: one workflow that interprets any plan, deterministically.

This module does no I/O and reads no clock or random source except through the
Temporal workflow API. Templates are rendered here (runner/engine/render.py);
secrets stay markers until an activity resolves them on the worker.

Semantics (DESIGN.md "Steps"): a step is considered once its needs finished; it
runs when its trigger rule holds and then its `when` is true, else it is skipped.
A failure with on_failure: fail stops new steps (except trigger_rule: always),
cancels running ones, compensates succeeded steps in reverse completion order,
runs `finally`, and fails the run.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

with workflow.unsafe.imports_passed_through():
    from runner import durations
    from runner.engine import control as control_rules
    from runner.engine import gates as gate_rules
    from runner.engine import render
    from runner.engine.campaign import Campaign
    from runner.engine.model import (
        DEFAULT_CONCURRENCY,
        GATE_NOTIFY_ACTIVITY,
        STORE_ACTIVITY,
        WAITING_ATTRIBUTE,
        WORKFLOW_TYPE,
        RunInput,
        StepRequest,
    )
    from runner.engine.steps_state import (
        ERROR_TEXT_LIMIT,
        MEMO_LIMIT,
        PAYLOAD_LIMIT,
        STORE_FLUSH_EVENTS,
        STORE_FLUSH_INTERVAL,
        STORE_RETRY,
        STORE_WRITE_TIMEOUT,
        TERMINAL,
        Refused,
        StepFailed,
        StepState,
        activity_timeouts,
        declaration,
        iso,
        ms,
        next_store_batch,
        payload_size,
        retry_policy,
        step_failure,
    )
    from runner.errors import InputError
    from runner.plan import inputs as run_inputs


CONTROL_ACTIONS = {
    "pause": "run_paused",
    "resume": "run_resumed",
    "concurrency": "concurrency_set",
    "skip": "items_skipped",
}
WAITING_KEY = SearchAttributeKey.for_keyword_list(WAITING_ATTRIBUTE)


@workflow.defn(name=WORKFLOW_TYPE)
class RunbookWorkflow:
    def __init__(self) -> None:
        self._steps: dict[str, StepState] = {}
        self._status = "running"
        self._error: dict[str, Any] | None = None
        self._outputs: Any = None
        self._inputs: dict[str, Any] = {}
        self._plan: dict[str, Any] = {}
        self._started_by = ""
        self._started_at: datetime | None = None
        self._finished_at: datetime | None = None
        self._failing = False
        self._failure: tuple[dict[str, Any], StepFailed] | None = None
        self._completed: list[str] = []  # succeeded steps, in completion order
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = False
        self._stopped = False  # running steps were cancelled because the run is failing
        self._main_task: asyncio.Task[None] | None = None
        self._gates: dict[str, gate_rules.Gate] = {}
        self._refused_signals: list[dict[str, Any]] = []
        self._gate_nodes: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, list[str]] = {}
        self._declarations: dict[str, dict[str, Any]] = {}
        # The run store's outbox: events numbered here, written by a local activity.
        self._record = False
        self._outbox: list[dict[str, Any]] = []
        self._seq = 0
        self._run_row: dict[str, Any] | None = None
        self._closing = False
        self._flush_now = False
        # Live control: a paused run starts nothing new; every action is recorded.
        self._paused = False
        self._controls: list[dict[str, Any]] = []
        self._campaigns: dict[str, Campaign] = {}
        self._concurrency_set: dict[str, int] = {}  # set before the fan-out started

    # -- queries ------------------------------------------------------------------------

    @workflow.query
    def state(self) -> dict[str, Any]:
        """The status JSON of DESIGN.md ("Machine-readable output")."""
        info = workflow.info()
        return {
            "run_id": info.run_id,
            "workflow_id": info.workflow_id,
            "name": self._plan.get("name"),
            "kind": self._plan.get("kind"),
            "status": self._status,
            "started_by": self._started_by,
            "started_at": iso(self._started_at),
            "finished_at": iso(self._finished_at),
            "inputs": self._inputs,
            "steps": {sid: self._step_json(sid, st) for sid, st in self._steps.items()},
            "gates": [gate_rules.as_json(g, iso) for g in self._gates.values()],
            "paused": self._paused,
            "controls": self._controls,
            "outputs": self._outputs,
            "error": self._error,
        }

    def _step_json(self, sid: str, state: StepState) -> dict[str, Any]:
        found = state.as_json()
        campaign = self._campaigns.get(sid)
        if campaign is not None:
            found["fanout"] = campaign.as_json()
        return found

    @workflow.query
    def declarations(self) -> dict[str, dict[str, Any]]:
        """The run's input declarations, so `modify --set k=v` can convert v by its type."""
        return self._declarations

    # -- the run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: RunInput) -> Any:
        self._plan = request.plan
        self._inputs = dict(request.inputs)
        self._started_by = request.started_by
        self._groups = dict(request.groups or {})
        self._declarations = {s["name"]: declaration(s) for s in self._plan.get("inputs", [])}
        self._started_at = workflow.now()
        nodes = self._plan["nodes"]
        finally_nodes = self._plan["finally_nodes"]
        self._steps = {n["id"]: StepState() for n in (*nodes, *finally_nodes)}
        flusher = None
        if request.record:
            self._record = True
            self._run_row = self._run_record(request)
            self._audit("run_started", self._started_by, {"inputs": self._inputs})
            flusher = asyncio.create_task(self._flush_outbox())
        cancelled = False
        try:
            await self._main(nodes)
        except asyncio.CancelledError:
            cancelled = True
            self._audit("cancel_requested", None, {})
            self._status = "cancelled"
            self._failing = True
            self._paused = False  # a cancel stops everything; compensation and finally run
            await self._stop_running("the run was cancelled", force=True)
            if self._main_task is not None:
                await self._main_task
        # Compensation and finally run whatever happened, including after a cancel: the
        # cancel request was delivered once, and what is scheduled from here runs.
        if self._failing:
            await self._compensate(nodes)
        await self._section(finally_nodes, in_finally=True)
        self._finish(cancelled)
        self._record_final_state()
        # A control or decision still being handled finishes before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if flusher is not None:
            # Nothing is lost: the run ends only once the store has every event.
            self._run_row = self._run_record(request)
            self._audit("run_finished", None, {"status": self._status, "error": self._error})
            self._closing = True
            await flusher
        if cancelled:
            raise asyncio.CancelledError()
        if self._status != "succeeded":
            assert self._error is not None
            raise ApplicationError(
                self._error["message"],
                {"status": self._status, "step": self._error.get("step")},
                type=self._error["type"],
                non_retryable=True,
            )
        return self._outputs

    # -- the run store ------------------------------------------------------------------

    def _run_record(self, request: RunInput) -> dict[str, Any]:
        info = workflow.info()
        return {
            "run_id": info.run_id,
            "workflow_id": info.workflow_id,
            "name": self._plan["name"],
            "kind": self._plan["kind"],
            "plan_hash": self._plan["plan_hash"],
            "definition_file": request.definition_file,
            "definition_sha256": request.definition_sha256,
            "definition_text": request.definition_text,
            "inputs": self._inputs,
            "status": self._status,
            "started_by": self._started_by,
            "started_at": iso(self._started_at),
            "finished_at": iso(self._finished_at),
            "outputs": self._outputs,
            "error": self._error,
        }

    def _emit(self, table: str, fields: dict[str, Any]) -> None:
        if not self._record:
            return
        self._seq += 1
        self._outbox.append({"table": table, "seq": self._seq, "at": iso(workflow.now()), **fields})

    def _audit(self, action: str, actor: str | None, detail: dict[str, Any]) -> None:
        self._emit("audit", {"action": action, "actor": actor, "detail": detail})

    def _step_event(self, sid: str, state: StepState, status: str) -> None:
        self._emit(
            "step",
            {
                "step": sid,
                "item": None,
                "attempt": state.attempts or None,
                "status": status,
                "started_at": iso(state.started_at),
                "finished_at": iso(state.finished_at),
                "output": state.output if status != "started" else None,
                "error": state.error,
            },
        )

    async def _flush_outbox(self) -> None:
        """Write the outbox in batches until the run closes and the outbox is empty.

        The local activity retries with backoff for as long as PostgreSQL is down;
        the steps go on meanwhile, and the run waits for the store only at its end.
        """
        run_id = workflow.info().run_id
        while True:
            # Write in batches at moments that matter, not at every event: each write is a
            # local activity, and writing per event cost a third of the throughput.
            with contextlib.suppress(builtins.TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        self._closing or self._flush_now or len(self._outbox) >= STORE_FLUSH_EVENTS
                    ),
                    timeout=STORE_FLUSH_INTERVAL if self._outbox else None,
                    timeout_summary="store flush",
                )
            self._flush_now = False
            if not self._outbox and self._run_row is None:
                if self._closing:
                    return
                await workflow.wait_condition(lambda: bool(self._outbox) or self._closing)
                continue
            events = next_store_batch(self._outbox)
            row = self._run_row
            await workflow.execute_local_activity(
                STORE_ACTIVITY,
                {"run_id": run_id, "run": row, "events": events},
                start_to_close_timeout=STORE_WRITE_TIMEOUT,
                retry_policy=STORE_RETRY,
            )
            del self._outbox[: len(events)]
            if self._run_row is row:
                self._run_row = None

    async def _store_drained(self) -> None:
        """Wait until every event so far is in the store (before an evidence step)."""
        if self._record:
            self._flush_now = True
            await workflow.wait_condition(lambda: not self._outbox and self._run_row is None)

    def _record_final_state(self) -> None:
        """Keep the final state in the memo, so `status` answers after the run closed."""
        state = self.state()
        if payload_size(state) > MEMO_LIMIT:
            for step in state["steps"].values():
                step["output"] = "(left out: the final state was too large for the memo)"
        workflow.upsert_memo({"state": state})

    async def _main(self, nodes: list[dict[str, Any]]) -> None:
        timeout = ms(self._plan.get("timeout_ms"))
        if timeout is None:
            await self._section(nodes, in_finally=False)
            return
        main = self._main_task = asyncio.create_task(self._section(nodes, in_finally=False))
        try:
            await workflow.wait_condition(main.done, timeout=timeout, timeout_summary="run timeout")
        except builtins.TimeoutError:
            self._status = "timed_out"
            self._failing = True
            self._error = {
                "type": "RunTimedOut",
                "message": f"the run did not finish within its timeout of "
                f"{durations.format_ms(self._plan['timeout_ms'])}",
                "step": None,
                "source": self._plan.get("source_file"),
            }
            self._paused = False
            await self._stop_running("the run timed out", force=True)
        await main

    def _finish(self, cancelled: bool) -> None:
        self._finished_at = workflow.now()
        if cancelled:
            self._status = "cancelled"
            self._error = self._error or {
                "type": "RunCancelled",
                "message": "the run was cancelled",
                "step": None,
                "source": None,
            }
        elif self._status == "timed_out":
            pass
        elif self._failure is not None:
            node, failure = self._failure
            self._status = "failed"
            self._error = {
                "type": failure.error_type,
                "message": f"step '{node['id']}' ({node['type']}, {node['source']}) failed with "
                f"{failure.error_type}: {failure.message}"[:ERROR_TEXT_LIMIT],
                "step": node["id"],
                "source": node["source"],
            }
        else:
            self._status = "succeeded"
            try:
                outputs = render.render(self._plan.get("outputs") or {}, self._context(None))
                size = payload_size(outputs)
                if size > PAYLOAD_LIMIT:
                    raise Refused(
                        "OutputsTooLarge",
                        f"the run's outputs are {size} bytes, over "
                        f"the {PAYLOAD_LIMIT}-byte limit; return less",
                    )
                self._outputs = outputs
            except render.TemplateFailure as exc:
                self._fail_run("TemplateError", f"outputs: {exc}")
            except Refused as exc:
                self._fail_run(exc.error_type, exc.message)

    def _fail_run(self, error_type: str, message: str) -> None:
        self._status = "failed"
        self._error = {
            "type": error_type,
            "message": message,
            "step": None,
            "source": self._plan.get("source_file"),
        }

    # -- scheduling ---------------------------------------------------------------------

    def _run_limit(self) -> int:
        """Steps (and each fan-out's items) at once in this run."""
        return int(self._plan.get("concurrency") or DEFAULT_CONCURRENCY)

    async def _section(self, nodes: list[dict[str, Any]], *, in_finally: bool) -> None:
        """Start every node whose needs are done, up to the run's concurrency, until all end."""
        limit = self._run_limit()
        ids = {n["id"] for n in nodes}
        waiting = list(nodes)
        while waiting or any(sid in self._tasks for sid in ids):
            if self._failing and not in_finally:
                await self._stop_running("another step failed")
            progressed = not self._paused  # a paused run starts nothing new
            while progressed:
                progressed = False
                for node in list(waiting):
                    needs = [n for n in node["needs"] if n in self._steps]
                    if any(self._steps[n].status not in TERMINAL for n in needs):
                        continue
                    skip = self._skip_reason(node, needs, in_finally)
                    if skip is not None:
                        self._skip(node, skip)
                        waiting.remove(node)
                        progressed = True
                        continue
                    if len(self._tasks) >= limit:
                        continue
                    waiting.remove(node)
                    self._tasks[node["id"]] = asyncio.create_task(self._run_step(node, in_finally))
                    progressed = True
            running = [sid for sid in ids if sid in self._tasks]
            if not running and waiting and self._paused:
                await self._unpaused()
                continue
            if not running:
                if waiting:  # cannot happen after validation; never wait forever
                    for node in waiting:
                        self._skip(node, "its needs can never finish")
                    waiting.clear()
                break
            self._changed = False
            await workflow.wait_condition(lambda: self._changed)

    def _skip_reason(self, node: dict[str, Any], needs: list[str], in_finally: bool) -> str | None:
        if self._failing and not in_finally and node["trigger_rule"] != "always":
            return "the run is failing"
        statuses = [self._steps[n].status for n in needs]
        rule = node["trigger_rule"]
        if rule == "all_succeeded" and any(s != "succeeded" for s in statuses):
            bad = next(n for n in needs if self._steps[n].status != "succeeded")
            return f"'{bad}' did not succeed ({self._steps[bad].status})"
        if rule == "one_failed" and "failed" not in statuses:
            return "none of its needs failed"
        return None

    def _skip(self, node: dict[str, Any], reason: str) -> None:
        state = self._steps[node["id"]]
        state.status = "skipped"
        state.reason = reason
        state.finished_at = workflow.now()
        self._step_event(node["id"], state, "skipped")

    async def _stop_running(self, reason: str, *, force: bool = False) -> None:
        """Cancel the running steps. After a step failure this happens once, so that
        `trigger_rule: always` steps started later still run; a cancel or the run's
        timeout (force) stops everything."""
        if self._stopped and not force:
            return
        self._stopped = True
        tasks = list(self._tasks.items())
        for sid, task in tasks:
            self._steps[sid].reason = reason
            task.cancel()
        for _, task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_step(self, node: dict[str, Any], in_finally: bool) -> None:
        state = self._steps[node["id"]]
        state.started_at = workflow.now()
        evicted = False
        try:
            when = node.get("when")
            if when is not None and not render.truthy(render.render(when, self._context(node))):
                state.status = "skipped"
                state.reason = "its `when` is false"
                return
            state.status = "running"
            state.attempts = 1
            self._step_event(node["id"], state, "started")
            state.output = await self._execute(node, state)
            state.status = "succeeded"
            self._completed.append(node["id"])
        except render.TemplateFailure as exc:
            self._fail(
                node, state, StepFailed("TemplateError", str(exc), state.attempts), in_finally
            )
        except StepFailed as exc:
            self._fail(node, state, exc, in_finally)
        except asyncio.CancelledError:
            state.status = "cancelled"
            raise
        except Exception as exc:
            # Anything else raised here would fail the workflow task, which Temporal
            # retries forever: the run would hang in RUNNING. Fail the step instead.
            failure = StepFailed("InternalError", f"{type(exc).__name__}: {exc}", state.attempts)
            self._fail(node, state, failure, in_finally)
        except GeneratorExit:
            # The worker evicted the run from its cache (it stops, or the cache is full):
            # the run goes on elsewhere from history, and no workflow call is allowed now.
            evicted = True
            raise
        finally:
            if not evicted:
                state.finished_at = workflow.now()
                self._tasks.pop(node["id"], None)
                self._changed = True
                self._step_event(node["id"], state, state.status)

    def _fail(
        self, node: dict[str, Any], state: StepState, exc: StepFailed, in_finally: bool
    ) -> None:
        state.status = "failed"
        if exc.attempts is not None:
            state.attempts = exc.attempts
        state.error = {"type": exc.error_type, "message": exc.message[:ERROR_TEXT_LIMIT]}
        if node["on_failure"] != "fail" or self._failure is not None:
            return
        self._failure = (node, exc)
        # A failing finally step fails the run, but nothing is compensated after finally.
        if not in_finally:
            self._failing = True

    # -- executing one step -------------------------------------------------------------

    def _context(self, node: dict[str, Any] | None) -> dict[str, Any]:
        steps = {}
        for sid, st in self._steps.items():
            duration = None
            if st.started_at and st.finished_at:
                duration = (st.finished_at - st.started_at).total_seconds()
            steps[sid] = {
                "output": st.output,
                "status": st.status,
                "attempts": st.attempts,
                "started_at": iso(st.started_at),
                "finished_at": iso(st.finished_at),
                "duration_seconds": duration,
            }
        info = workflow.info()
        return {
            "inputs": self._inputs,
            "steps": steps,
            "run": {
                "id": info.workflow_id,
                "name": self._plan.get("name"),
                "kind": self._plan.get("kind"),
                "started_by": self._started_by,
                "started_at": iso(self._started_at),
            },
            "secrets": render.Secrets(),
        }

    async def _execute(self, node: dict[str, Any], state: StepState) -> Any:
        if node.get("fanout"):
            wanted = self._concurrency_set.get(node["id"]) or node["fanout"]["concurrency"]
            concurrency = control_rules.fanout_concurrency(wanted, self._run_limit())
            campaign = Campaign(self, node, concurrency)
            self._campaigns[node["id"]] = campaign
            return await campaign.execute()
        kind = node["runs_in"]
        if kind == "workflow":
            return await self._in_workflow(node)
        if kind == "child_workflow":
            return await self._child(node)
        if node["type"] == "evidence":
            if not self._record:
                raise StepFailed(
                    "EvidenceFailed",
                    "the run store is off for this run "
                    "(QLRF_STORE=off), so there is no evidence to bundle",
                    1,
                )
            await self._store_drained()  # the bundle holds every event up to this step
        return await self._activity(node, state, node["with"], f"step:{node['id']}", node["name"])

    async def _in_workflow(self, node: dict[str, Any]) -> Any:
        params = render.render(node["with"], self._context(node))
        step_type = node["type"]
        if step_type == "sleep":
            try:
                wait = durations.parse_ms(params["duration"])
            except ValueError as exc:
                raise StepFailed("InvalidDuration", str(exc), 1) from None
            await workflow.sleep(timedelta(milliseconds=wait), summary=node["name"])
            return {}
        if step_type == "assert":
            if not render.truthy(params["that"]):
                message = params.get("message") or f"the condition {node['with']['that']} is false"
                raise StepFailed("AssertionFailed", str(message), 1)
            return {}
        if step_type == "approval":
            return await self._gate(node, params)
        raise StepFailed(
            "StepTypeUnavailable",
            f"step type '{step_type}' is not available in this version of qlrf-run",
            1,
        )

    # -- approval gates -----------------------------------------------------------------

    @workflow.update(name="decide")
    async def decide(self, decision: dict[str, Any]) -> dict[str, Any]:
        """approve / reject / modify a waiting gate; the validator has already accepted it."""
        gate = self._gates[decision["gate"]]
        self._apply(gate, decision)
        return gate_rules.as_json(gate, iso)

    @decide.validator
    def _validate_decide(self, decision: dict[str, Any]) -> None:
        problem = self._refusal(decision)
        if problem:
            raise ApplicationError(problem, type="DecisionRefused", non_retryable=True)

    @workflow.signal(name="decide")
    def decide_signal(self, decision: dict[str, Any]) -> None:
        """The same decision for clients that can only signal: checked the same way."""
        problem = self._refusal(decision)
        if problem is None:
            self._apply(self._gates[decision["gate"]], decision)
            return
        gate = self._gates.get(str(decision.get("gate"))) if isinstance(decision, dict) else None
        record = {"at": iso(workflow.now()), "decision": decision, "reason": problem}
        if gate is not None:
            gate.refused.append(record)
        else:
            self._refused_signals.append(record)

    # -- live control -------------------------------------------------------------------

    @workflow.update(name="control")
    async def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """pause / resume the run, or change a running fan-out; the validator accepted it."""
        action, by = request["action"], request["by"]
        record: dict[str, Any] = {
            "action": action,
            "by": by,
            "at": iso(workflow.now()),
            "comment": request.get("comment") or "",
        }
        campaign = self._campaigns.get(request.get("step") or "")
        if action in ("pause", "resume"):
            self._paused = action == "pause"
            for running in self._campaigns.values():
                await running.tell_batch({"paused": self._paused})
        elif action == "concurrency":
            record.update(step=request["step"], concurrency=request["concurrency"])
            self._concurrency_set[request["step"]] = request["concurrency"]
            if campaign is not None:
                campaign.concurrency = request["concurrency"]
                await campaign.tell_batch({"concurrency": request["concurrency"]})
        else:
            assert campaign is not None  # the validator refuses a skip before the start
            indexes, _ = campaign.indexes(request["items"])
            campaign.skip.update(indexes)
            record.update(step=request["step"], items=request["items"])
            await campaign.tell_batch({"skip": indexes})
        self._controls.append(record)
        self._audit(CONTROL_ACTIONS[action], by, {k: v for k, v in record.items() if k != "by"})
        self._changed = True
        return record

    @control.validator
    def _validate_control(self, request: dict[str, Any]) -> None:
        fanout = {
            n["id"]: self._steps[n["id"]].status
            for n in (*self._plan.get("nodes", []), *self._plan.get("finally_nodes", []))
            if n.get("fanout")
        }
        problem = control_rules.refusal(
            request,
            run_status=self._status,
            paused=self._paused,
            fanout_steps=fanout,
            started={sid: c for sid, c in self._campaigns.items() if c.started},
            run_limit=self._run_limit(),
        )
        if problem:
            raise ApplicationError(problem, type="ControlRefused", non_retryable=True)

    async def _unpaused(self) -> None:
        if self._paused:
            await workflow.wait_condition(lambda: not self._paused, timeout_summary="paused")

    def _refusal(self, decision: Any) -> str | None:
        return gate_rules.refusal(
            self._gates,
            decision,
            started_by=self._started_by,
            groups=self._groups,
            declarations=self._declarations,
        )

    def _apply(self, gate: gate_rules.Gate, decision: dict[str, Any]) -> None:
        now = iso(workflow.now())
        kind, by = decision["decision"], decision["by"]
        comment = decision.get("comment") or ""
        record: dict[str, Any] = {"decision": kind, "by": by, "at": now, "comment": comment}
        if kind == "approve":
            gate.approvals.append({"by": by, "at": now, "comment": comment})
            if len(gate.approvals) >= gate.min_approvals:
                gate.status = "approved"
        elif kind == "reject":
            gate.status = "rejected"
        else:
            changes = {
                key: {"from": self._inputs.get(key), "to": value}
                for key, value in decision["set"].items()
            }
            self._inputs.update(decision["set"])
            record["changes"] = changes
            gate.modifications.append({"by": by, "at": now, "comment": comment, "changes": changes})
            gate.approvals.clear()  # what was approved has changed: ask again
            node = self._gate_nodes[gate.gate]
            # The message may name inputs that changed: render it again.
            with contextlib.suppress(render.TemplateFailure):
                gate.message = str(
                    render.render(node["with"].get("message", ""), self._context(node))
                )
        gate.decisions.append(record)
        self._changed = True
        detail = {
            "gate": gate.gate,
            "step": gate.step,
            "decision": kind,
            "comment": comment,
            "changes": record.get("changes"),
        }
        self._audit("gate_decided", by, detail)
        if kind == "modify":
            self._audit("inputs_modified", by, {"gate": gate.gate, "changes": record["changes"]})

    async def _gate(
        self, node: dict[str, Any], params: dict[str, Any], gate_id: str | None = None
    ) -> Any:
        now = workflow.now()
        timeout_text = str(params.get("timeout") or "24h")  # as the operator wrote it
        timeout_ms = durations.parse_ms(timeout_text)
        gate = gate_rules.Gate(
            gate=gate_id or node["id"],
            step=node["id"],
            message=str(params.get("message", "")),
            approvers=[str(a) for a in params.get("approvers") or []],
            min_approvals=int(params.get("min_approvals") or 1),
            allow_self_approval=bool(params.get("allow_self_approval", False)),
            modifiable=[str(m) for m in params.get("modifiable") or []],
            on_timeout=str(params.get("on_timeout") or "reject"),
            opened_at=now,
            deadline=now + timedelta(milliseconds=timeout_ms),
        )
        self._gates[gate.gate] = gate
        self._gate_nodes[gate.gate] = node
        self._flush_now = True  # a waiting gate should be visible in the store at once
        self._audit(
            "gate_opened",
            None,
            {
                "gate": gate.gate,
                "step": gate.step,
                "message": gate.message,
                "approvers": gate.approvers,
                "deadline": iso(gate.deadline),
            },
        )
        self._steps[node["id"]].status = "waiting"
        self._publish_waiting()
        notify = asyncio.create_task(self._notify_gate(gate))
        try:
            while gate.status == "waiting":
                remaining = gate.deadline - workflow.now()
                if remaining <= timedelta(0):
                    gate.status = "timed_out"
                    break
                modifications = len(gate.modifications)
                try:
                    await workflow.wait_condition(
                        lambda seen=modifications: (  # type: ignore[misc]
                            gate.status != "waiting" or len(gate.modifications) > seen
                        ),
                        timeout=remaining,
                        timeout_summary=f"approval:{gate.gate}",
                    )
                except builtins.TimeoutError:
                    gate.status = "timed_out"
        except asyncio.CancelledError:
            self._close_gate(gate, node)
            raise
        self._close_gate(gate, node)
        await notify
        output: dict[str, Any] = {
            "decision": gate.status,
            "approvals": gate.approvals,
            "modifications": gate.modifications,
        }
        if gate.status == "approved":
            return output
        if gate.status == "rejected":
            last = gate.decisions[-1]
            reason = f": {last['comment']}" if last.get("comment") else ""
            raise StepFailed(
                "ApprovalRejected", f"gate '{gate.gate}' was rejected by {last['by']}{reason}", 1
            )
        # No decision before the deadline.
        if gate.on_timeout == "approve":
            output["decision"] = "approved"
            output["timed_out"] = True
            return output
        if gate.on_timeout == "fail":
            raise StepFailed(
                "ApprovalTimedOut",
                f"gate '{gate.gate}' had no decision within {timeout_text}",
                1,
            )
        raise StepFailed(
            "ApprovalRejected",
            f"gate '{gate.gate}' had no decision within {timeout_text}, so it is rejected",
            1,
        )

    def _close_gate(self, gate: gate_rules.Gate, node: dict[str, Any]) -> None:
        if gate.status == "waiting":
            gate.status = "cancelled"
        self._steps[node["id"]].status = "running"
        self._publish_waiting()

    def _publish_waiting(self) -> None:
        """Keep QlrfWaiting listing the waiting gates, so `pending` is one visibility query."""
        waiting = sorted(g.gate for g in self._gates.values() if g.status == "waiting")
        workflow.upsert_search_attributes([WAITING_KEY.value_set(waiting)])

    async def _notify_gate(self, gate: gate_rules.Gate) -> None:
        """Tell the configured sinks that a gate waits; a failed notification never blocks it."""
        info = workflow.info()
        request = {
            "run": info.workflow_id,
            "gate": gate.gate,
            "message": gate.message,
            "approvers": gate.approvers,
            "deadline": iso(gate.deadline),
            "command": f"qlrf-run approve {info.workflow_id} {gate.gate}",
        }
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                GATE_NOTIFY_ACTIVITY,
                request,
                activity_id=f"notify:{gate.gate}",
                summary=f"notify approvers of {gate.gate}",
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )

    async def _activity(
        self,
        node: dict[str, Any],
        state: StepState,
        params: dict[str, Any],
        activity_id: str,
        summary: str,
    ) -> Any:
        rendered, script_env = render.step_params(node["type"], params, self._context(node))
        timeouts = activity_timeouts(node)
        request = StepRequest(workflow.info().workflow_id, node["id"], rendered, script_env)
        size = payload_size(request.params) + payload_size(script_env)
        if size > PAYLOAD_LIMIT:
            # Scheduling it would fail the workflow task (and hang the run) instead.
            raise StepFailed(
                "PayloadsTooLarge",
                f"the step's rendered parameters are {size} "
                f"bytes, over the {PAYLOAD_LIMIT}-byte limit",
                1,
            )
        try:
            result = await workflow.execute_activity(
                node["activity"],
                request,
                activity_id=activity_id,
                summary=summary,
                start_to_close_timeout=ms(timeouts.get("start_to_close_ms")),
                schedule_to_close_timeout=ms(timeouts.get("schedule_to_close_ms")),
                schedule_to_start_timeout=ms(timeouts.get("schedule_to_start_ms")),
                heartbeat_timeout=ms(timeouts.get("heartbeat_ms")),
                retry_policy=retry_policy(node["retry"]),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from None  # the step was stopped, not failed
            failure = step_failure(exc, node["retry"]["max_attempts"])
            if activity_id.startswith("step:"):
                self._attempt_failures(node["id"], failure.earlier)
            raise failure from None
        state.attempts = int(result.get("attempt", 1))
        if activity_id.startswith("step:"):
            self._attempt_failures(node["id"], result.get("failures") or [])
        return result.get("output")

    def _attempt_failures(self, sid: str, failures: list[dict[str, Any]]) -> None:
        """Record the attempts that failed before the last one (see runner/steps/common.py)."""
        for failure in failures:
            attempt = StepState(
                attempts=failure.get("attempt") or 0,
                error={"type": str(failure["type"]), "message": str(failure["message"])},
            )
            self._step_event(sid, attempt, "failed")

    async def _child(self, node: dict[str, Any]) -> Any:
        child_plan = node.get("child")
        if not child_plan:
            raise StepFailed(
                "ChildRunFailed", "the child runbook was not compiled into the plan", 1
            )
        given = render.render(node["with"].get("inputs") or {}, self._context(node))
        declared = {spec["name"]: declaration(spec) for spec in child_plan.get("inputs", [])}
        try:
            values = run_inputs.resolve(declared, given)
        except InputError as exc:
            raise StepFailed("InputError", f"child runbook inputs: {exc}", 1) from None
        child_id = f"{workflow.info().workflow_id}.{node['id']}"
        try:
            return await workflow.execute_child_workflow(
                WORKFLOW_TYPE,
                RunInput(child_plan, values, self._started_by, "", self._groups),
                id=child_id,
                static_summary=node["name"],
            )
        except ChildWorkflowError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from None
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause or exc)
            raise StepFailed("ChildRunFailed", f"child run {child_id}: {message}", 1) from None

    # -- compensation -------------------------------------------------------------------

    async def _compensate(self, nodes: list[dict[str, Any]]) -> None:
        by_id = {n["id"]: n for n in nodes}
        for sid in reversed(self._completed):
            node = by_id.get(sid)
            comp = node.get("compensate") if node else None
            if not node or not comp:
                continue
            state = self._steps[sid]
            record: dict[str, Any] = {"status": "running", "error": None}
            state.compensation = record
            try:
                if comp["runs_in"] != "activity":
                    raise StepFailed(
                        "StepTypeUnavailable", f"a {comp['type']} step cannot compensate", 1
                    )
                shadow = {**node, **comp, "id": sid, "name": comp["name"]}
                await self._activity(
                    shadow, StepState(), comp["with"], f"compensate:{sid}", comp["name"]
                )
                record["status"] = "succeeded"
            except render.TemplateFailure as exc:
                record.update(status="failed", error={"type": "TemplateError", "message": str(exc)})
            except StepFailed as exc:
                record.update(
                    status="failed", error={"type": exc.error_type, "message": exc.message}
                )
