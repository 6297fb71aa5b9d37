"""A `foreach` step run as a campaign: waves, failure budgets, wave gates, live control.

Workflow code (it runs inside RunbookWorkflow): no I/O, time only from the workflow.
For each wave, in list order: wait out its `pause` (a durable timer), open its gate
`<step>/<wave>` when it has `approval: true`, then run its items in batches of at
most 1,000, each batch a child workflow (runner/engine/batch.py) with a
deterministic id. A wave that exceeds its failure budget stops the campaign before
the next wave, and the step fails with FailureBudgetExceeded naming the failed items.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from runner import durations
    from runner.engine import render, waves
    from runner.engine.model import BATCH_WORKFLOW_TYPE, BatchInput, BatchItem
    from runner.engine.steps_state import (
        PAYLOAD_LIMIT,
        StepFailed,
        activity_timeouts,
        iso,
        payload_size,
    )

if TYPE_CHECKING:
    from runner.engine.interpreter import RunbookWorkflow


class Campaign:
    """The live state of one fan-out step, shown in `state` and steered by `control`."""

    def __init__(self, run: RunbookWorkflow, node: dict[str, Any], concurrency: int) -> None:
        self.run = run
        self.node = node
        self.fan: dict[str, Any] = node["fanout"]
        self.concurrency = concurrency
        self.items: list[Any] = []
        self.keys: list[str] = []
        self.skip: set[int] = set()
        self.waves: list[dict[str, Any]] = []
        self.batch: workflow.ChildWorkflowHandle[Any, Any] | None = None
        self.batch_range = (0, 0)
        self.finished_before = 0  # items before this index are in finished batches
        self.status: dict[int, str] = {}  # every item's status, for small fan-outs
        self.outputs: dict[int, Any] = {}
        self.failures: list[dict[str, Any]] = []
        self.skipped: list[int] = []
        self.not_started = 0
        self.started = False

    # -- what operators see ---------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return {
            "total": len(self.items),
            "concurrency": self.concurrency,
            "waves": [dict(w) for w in self.waves],
        }

    def output(self) -> dict[str, Any]:
        """DESIGN.md's step output; with more than 1,000 items, only failed items are listed."""
        failed = {f["index"]: f for f in self.failures}
        if len(self.items) <= waves.OUTPUT_ITEMS:
            items = [
                {
                    "item": item,
                    "status": self.status.get(i, "not_started"),
                    "output": self.outputs.get(i),
                    "error": failed[i]["error"] if i in failed else None,
                }
                for i, item in enumerate(self.items)
            ]
        else:
            items = [
                {"item": self.items[i], "status": "failed", "output": None, "error": f["error"]}
                for i, f in sorted(failed.items())
            ]
        out: dict[str, Any] = {
            "items": items,
            "succeeded": sum(w["succeeded"] for w in self.waves),
            "failed": len(self.failures),
            "skipped": len(self.skipped),
            "not_started": self.not_started,
            "waves": [
                {k: w[k] for k in ("name", "size", "succeeded", "failed", "skipped", "status")}
                for w in self.waves
            ],
        }
        if payload_size(out) > PAYLOAD_LIMIT // 2:
            # Outputs of many items can outgrow a payload; the counts and errors stay.
            for entry in items:
                entry["output"] = None
            out["outputs_left_out"] = True
        return out

    # -- running ---------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        try:
            return await self._execute()
        except (StepFailed, asyncio.CancelledError) as exc:
            # Rejected at a gate, over budget, cancelled: what was done is still the output.
            if self.started:
                self._stopped(cancelled=isinstance(exc, asyncio.CancelledError))
                self.run._steps[self.node["id"]].output = self.output()
            raise

    def _stopped(self, *, cancelled: bool) -> None:
        for wave in self.waves:
            if wave["status"] in ("pending", "pausing", "waiting", "paused"):
                wave["status"] = "not_started"
                self.not_started += wave["size"]
            elif wave["status"] == "running":
                wave["status"] = "cancelled" if cancelled else "failed"
                wave["finished_at"] = iso(workflow.now())

    async def _execute(self) -> dict[str, Any]:
        node = self.node
        items = render.render(self.fan["foreach"], self.run._context(node))
        if not isinstance(items, list):
            raise StepFailed(
                "InvalidForeach",
                f"foreach gave {type(items).__name__} {str(items)[:200]!r}, not a list; "
                "give it a list from inputs or from an earlier step's output",
                1,
            )
        activity_timeouts(node)  # refuse a plan Temporal would refuse, before any wave
        self.items = items
        self.keys = [waves.item_key(item) for item in items]
        specs = self.fan["waves"]
        bounds = waves.bounds(len(items), specs)
        for b in bounds:
            spec = specs[b.spec] if b.spec >= 0 else {}
            self.waves.append(
                {
                    "name": b.name,
                    "gate": f"{node['id']}/{b.name}" if spec.get("approval") else None,
                    "size": b.end - b.start,
                    "first": b.start,
                    "budget": waves.budget(
                        b.end - b.start, self.fan["max_failures"], self.fan["max_failures_percent"]
                    ),
                    "status": "pending",
                    "succeeded": 0,
                    "failed": 0,
                    "skipped": 0,
                    "running": 0,
                    "batch": None,
                    "started_at": None,
                    "finished_at": None,
                }
            )
        self.started = True
        # Batches write their items' rows under the run's row: make sure it exists.
        await self.run._store_drained()
        for n, (b, entry) in enumerate(zip(bounds, self.waves, strict=True)):
            spec = specs[b.spec] if b.spec >= 0 else {}
            await self._before_wave(b, spec, entry)
            if await self._wave(b, entry):
                continue
            # Over budget: nothing more starts, in this wave or any later one (execute
            # marks the later waves not_started).
            failed = [f["item"] for f in self.failures if f["index"] >= b.start]
            named = ", ".join(failed[: waves.NAMED_IN_ERROR])
            more = (
                f" and {len(failed) - waves.NAMED_IN_ERROR} more"
                if len(failed) > waves.NAMED_IN_ERROR
                else ""
            )
            after = f" before wave '{self.waves[n + 1]['name']}'" if n + 1 < len(bounds) else ""
            raise StepFailed(
                "FailureBudgetExceeded",
                f"wave '{b.name}' had {len(failed)} failed "
                f"item{'s' if len(failed) != 1 else ''}, over its budget of "
                f"{entry['budget']}: {named}{more}; the campaign stopped{after}",
                1,
            )
        return self.output()

    async def _before_wave(self, b: waves.WaveBounds, spec: dict[str, Any], entry: dict) -> None:
        if spec.get("pause_ms"):
            entry["status"] = "pausing"
            entry["until"] = iso(workflow.now() + timedelta(milliseconds=spec["pause_ms"]))
            await workflow.sleep(
                timedelta(milliseconds=spec["pause_ms"]),
                summary=f"pause before wave {b.name} of {self.node['id']}",
            )
        if spec.get("approval"):
            entry["status"] = "waiting"
            await self.run._gate(self.node, self._gate_params(b, spec), gate_id=entry["gate"])
        if self.run._paused:
            entry["status"] = "paused"
            await self.run._unpaused()

    def _gate_params(self, b: waves.WaveBounds, spec: dict[str, Any]) -> dict[str, Any]:
        done = "; ".join(
            f"{w['name']}: {w['succeeded']} succeeded, {w['failed']} failed"
            for w in self.waves
            if w["status"] in ("succeeded", "failed")
        )
        message = (
            f"Start wave '{b.name}' of {self.node['name']}: items {b.start + 1}-{b.end} of "
            f"{len(self.items)}?" + (f" So far {done}." if done else "")
        )
        timeout = spec.get("timeout_ms")
        return {
            "message": message,
            "approvers": list(spec.get("approvers") or []),
            "min_approvals": spec.get("min_approvals") or 1,
            # "Else anyone may approve" (DESIGN.md): the operator running it, too.
            "allow_self_approval": True,
            "timeout": durations.format_ms(timeout) if timeout else "24h",
            "on_timeout": "reject",
            "modifiable": [],
        }

    async def _wave(self, b: waves.WaveBounds, entry: dict[str, Any]) -> bool:
        """Run one wave's items; False when it exceeded its failure budget."""
        entry["status"] = "running"
        entry["started_at"] = iso(workflow.now())
        step = self.node["id"]
        self.run._audit(
            "wave_started", None, {"step": step, "wave": b.name, "items": b.end - b.start}
        )
        # Rendered now, not at the start: a decision at a gate may have changed inputs.
        context = self.run._context(self.node)
        loop_var = self.fan["as"]
        requests: list[BatchItem] = []
        sizes: list[int] = []
        for i in range(b.start, b.end):
            context[loop_var] = self.items[i]
            params, env = render.step_params(self.node["type"], self.node["with"], context)
            size = payload_size(params) + payload_size(env)
            if size > PAYLOAD_LIMIT:
                raise StepFailed(
                    "PayloadsTooLarge",
                    f"the parameters of item {self.keys[i]!r} are {size} bytes, over the "
                    f"{PAYLOAD_LIMIT}-byte limit",
                    1,
                )
            requests.append(BatchItem(i, self.keys[i], params, env))
            sizes.append(size)
        for number, (start, end) in enumerate(waves.batches(sizes), start=1):
            await self.run._unpaused()
            result = await self._batch(entry, requests[start:end], number)
            self._merge(entry, result)
            self.finished_before = b.start + end
            if result["exceeded"]:
                self.not_started += len(requests) - end + len(result["not_started"])
                self._wave_finished(entry, "failed")
                return False
        self._wave_finished(entry, "succeeded")
        return True

    def _wave_finished(self, entry: dict[str, Any], status: str) -> None:
        entry["status"] = status
        entry["finished_at"] = iso(workflow.now())
        detail = {k: entry[k] for k in ("succeeded", "failed", "skipped", "budget", "status")}
        self.run._audit(
            "wave_finished", None, {"step": self.node["id"], "wave": entry["name"], **detail}
        )

    async def _batch(
        self, entry: dict[str, Any], items: list[BatchItem], number: int
    ) -> dict[str, Any]:
        node = self.node
        info = workflow.info()
        first, last = items[0].index, items[-1].index
        budget = entry["budget"]
        batch = BatchInput(
            run_id=info.workflow_id,
            step=node["id"],
            name=node["name"],
            wave=entry["name"],
            activity=node["activity"],
            retry=node["retry"],
            timeouts=node["timeouts"],
            items=items,
            concurrency=self.concurrency,
            budget=None if budget is None else budget - entry["failed"],
            keep_outputs=len(self.items) <= waves.OUTPUT_ITEMS,
            paused=self.run._paused,
            skip=sorted(i for i in self.skip if first <= i <= last),
            store_run_id=info.run_id if self.run._record else "",
        )
        child_id = f"{info.workflow_id}.{node['id']}.{entry['name']}.{number}"
        handle = await workflow.start_child_workflow(
            BATCH_WORKFLOW_TYPE,
            batch,
            id=child_id,
            static_summary=f"{node['name']}: wave {entry['name']}, items {first + 1}-{last + 1}",
        )
        self.batch, self.batch_range = handle, (first, last)
        entry["batch"] = child_id
        try:
            return dict(await handle)
        except ChildWorkflowError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from None
            message = getattr(exc.cause, "message", None) or str(exc.cause or exc)
            raise StepFailed("BatchFailed", f"batch {child_id}: {message}", 1) from None
        finally:
            self.batch = None
            entry["batch"] = None

    def _merge(self, entry: dict[str, Any], result: dict[str, Any]) -> None:
        entry["succeeded"] += result["succeeded"]
        entry["failed"] += result["failed"]
        entry["skipped"] += len(result["skipped"])
        self.failures.extend(result["failures"])
        self.skipped.extend(result["skipped"])
        if len(self.items) <= waves.OUTPUT_ITEMS:
            for key, value in result["outputs"].items():
                self.status[int(key)] = "succeeded"
                self.outputs[int(key)] = value
            for failure in result["failures"]:
                self.status[failure["index"]] = "failed"
            for index in result["skipped"]:
                self.status[index] = "skipped"

    # -- live control ----------------------------------------------------------------------

    async def tell_batch(self, change: dict[str, Any]) -> None:
        """Forward a control change to the running batch, if there is one."""
        if self.batch is None:
            return
        # The batch may have just finished; the next one starts with the new settings.
        with contextlib.suppress(Exception):
            await self.batch.signal("control", change)

    def indexes(self, names: list[str]) -> tuple[list[int], list[str]]:
        """The indexes of items by name, and the names that match no item."""
        by_key: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            by_key.setdefault(key, []).append(i)
        found: list[int] = []
        unknown: list[str] = []
        for name in names:
            if name in by_key:
                found.extend(by_key[name])
            else:
                unknown.append(name)
        return found, unknown
