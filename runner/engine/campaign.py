"""A `foreach` step run as a campaign: waves, failure budgets, wave gates, live control.

Workflow code: no I/O, time only from the workflow. For each wave, in list order:
wait out its `pause` (a durable timer), open its gate `<step>/<wave>` when it has
`approval: true`, then run its items in batches of at most 1,000, each batch a
child workflow (runner/engine/batch.py) with a deterministic id. A wave that
exceeds its failure budget stops the campaign before the next wave, and the step
fails with FailureBudgetExceeded naming the failed items.

The campaign knows the run only through `CampaignHost`; the run steers it only
through `set_concurrency`, `skip` and `tell_batch`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol, cast

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

from runner import durations
from runner.contract import (
    BATCH_CONTROL_SIGNAL,
    BATCH_WORKFLOW_TYPE,
    INVENTORY_OPEN_ACTIVITY,
    PAYLOAD_LIMIT,
    BatchInput,
    BatchItem,
    BatchResult,
    PagedSource,
    payload_size,
)
from runner.contract.state import FailureJson, FanoutView, WaveJson
from runner.engine import inventory, render
from runner.engine.activity_call import call_activity, checked_timeouts
from runner.engine.child_call import child_failure
from runner.engine.failures import StepFailed
from runner.plan import waves
from runner.plan.model import FanOut, Node, Wave, to_json
from runner.times import iso
from runner.trust import internal


class CampaignHost(Protocol):
    """What a campaign needs from the run it belongs to."""

    @property
    def paused(self) -> bool: ...

    @property
    def recording(self) -> bool: ...  # the run store is on

    def context(self, **loop: Any) -> Any: ...

    def audit(self, action: str, actor: str | None, detail: dict[str, Any]) -> None: ...

    def touch(self) -> None: ...  # a wave changed: publish it

    def kept_items(self, step_id: str) -> set[str]: ...  # done in the run redriven

    # The run whose done items a fan-out from a file leaves out (read from the store);
    # None runs every item.
    def redriven_in_store(self, step_id: str) -> str | None: ...

    async def open_gate(self, node: Node, params: dict[str, Any], gate_id: str) -> Any: ...

    async def unpaused(self) -> None: ...

    def budget_spent(self, node: Node, wave: str, failed: int, budget: int | None) -> None: ...
    # The policy's windows before each wave, and its forbid over a proposal's items.
    async def wave_window(self, node: Node, wave: str) -> None: ...
    def screen(self, step: str, params: Mapping[str, Any], env: Mapping[str, str]) -> None: ...

    async def store_drained(self) -> None: ...


FAILED_ITEMS_SHOWN = 20
FAILURES_KEPT = 1000  # failed items named in the output; the count is always exact
# How a batch of a fan-out from a file fails when its page cannot be read or rendered:
# the step fails with the same error type.
PAGE_FAILURES = (*inventory.RETRY.non_retryable_errors, "TemplateError", "PayloadsTooLarge")
# Runs from this version on name mapping items by their `name` (waves.item_key).
ITEM_NAMES = "qlrf-item-names"


class Campaign:
    """The live state of one fan-out step, shown in `state` and steered by `control`."""

    def __init__(
        self,
        host: CampaignHost,
        node: Node,
        concurrency: int,
        *,
        legacy: bool,
        names_items: bool = False,
    ) -> None:
        assert node.fanout is not None
        self.host = host
        self.node = node
        self.fan: FanOut = node.fanout
        self.concurrency = concurrency
        self.legacy = legacy  # a run started before per-wave budgets
        self.names_items = names_items  # a run that names inventory items by `name`
        self.items: list[Any] = []
        self.keys: list[str] = []
        self.total = 0
        # A fan-out from a file: what inventory_open said ({path, format, sha256, ...});
        # the run then knows its items by index only, and batches read their own.
        self.inventory: dict[str, Any] | None = None
        self.named = False
        self.skipped_by_operator: set[int] = set()
        self.skipped_names: set[str] = set()  # `skip` of a fan-out from a file
        self.waves: list[WaveJson] = []
        self.batch: workflow.ChildWorkflowHandle[Any, Any] | None = None
        self.finished_before = 0  # items before this index are in finished batches
        self.status: dict[int, str] = {}  # every item's status, for small fan-outs
        self.outputs: dict[int, Any] = {}
        self.failures: list[FailureJson] = []
        self.failed_count = 0
        self.skipped: list[int] = []
        self.not_started = 0
        self.started = False
        # Runs from START_ONCE on authenticate their control of a batch (a key, and a
        # number that grows, so that a signal read from history cannot be sent again).
        self.authenticated = bool(getattr(host, "authenticated", False))
        self.trust: str | None = getattr(host, "trust", None)
        self.sent = 0

    # -- what operators see ---------------------------------------------------------------

    def view(self) -> FanoutView:
        return FanoutView(
            total=self.total,
            concurrency=self.concurrency,
            waves=[w.copy() for w in self.waves],
            # The latest failed items, named as `status` and `skip` name them.
            failed_items=[
                {"item": f["item"], "error": f["error"], "at": f.get("at")}
                for f in self.failures[-FAILED_ITEMS_SHOWN:]
            ],
        )

    def output(self) -> dict[str, Any]:
        """The step's output (docs/campaigns.md); above 1,000 items, only the failed ones."""
        failed = {f["index"]: f for f in self.failures}
        if self.total <= waves.OUTPUT_ITEMS:
            items = [
                {
                    "item": item,
                    "status": self.status.get(i, "not_started"),
                    "output": self.outputs.get(i),
                    "error": failed[i]["error"] if i in failed else None,
                }
                # A fan-out from a file knows the items its batches have read so far.
                for i, item in enumerate(self.items + [None] * (self.total - len(self.items)))
            ]
        else:
            items = [
                {
                    "item": self.items[i] if self.inventory is None else f["item"],
                    "status": "failed",
                    "output": None,
                    "error": f["error"],
                }
                for i, f in sorted(failed.items())
            ]
        out: dict[str, Any] = {
            "items": items,
            "succeeded": sum(w["succeeded"] for w in self.waves),
            "failed": self.failed_count,
            "skipped": len(self.skipped),
            "not_started": self.not_started,
            "waves": [
                {k: w[k] for k in ("name", "size", "succeeded", "failed", "skipped", "status")}
                for w in self.waves
            ],
        }
        if self.failed_count > len(self.failures):
            out["failed_items_left_out"] = self.failed_count - len(self.failures)
        if payload_size(out) > PAYLOAD_LIMIT // 2:
            # Outputs of many items can outgrow a payload; the counts and errors stay.
            for entry in items:
                entry["output"] = None
            out["outputs_left_out"] = True
        return out

    def stopped_output(self, *, cancelled: bool) -> dict[str, Any]:
        """The output of a campaign stopped by a gate, its budget or a cancel."""
        for wave in self.waves:
            if wave["status"] in ("pending", "pausing", "waiting", "paused"):
                wave["status"] = "not_started"
                self.not_started += wave["size"]
            elif wave["status"] == "running":
                wave["status"] = "cancelled" if cancelled else "failed"
                wave["finished_at"] = iso(workflow.now())
        return self.output()

    # -- running ---------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        node = self.node
        if inventory.from_file(self.fan.foreach) is not None:
            checked_timeouts(node.id, node.timeouts)
            self.total = await self._open()
            return await self._waves()
        items = render.render(self.fan.foreach, self.host.context())
        if not isinstance(items, list):
            raise StepFailed(
                "InvalidForeach",
                f"foreach gave {type(items).__name__} {str(items)[:200]!r}, not a list; "
                "give it a list from inputs or from an earlier step's output",
                1,
            )
        checked_timeouts(node.id, node.timeouts)  # refuse what Temporal would, before a wave
        done = self.host.kept_items(node.id)
        if done:
            # A redrive: only the items that did not succeed run, in waves of their own.
            items = [item for item in items if not waves.item_names(item) & done]
        # Hosts of an inventory ({"name": "web-1", "address": ...}) go by their names in
        # progress, errors, `skip` and the store; runs started before, by their JSON.
        # Runs that took the trust snapshot name items: no patch is asked after it.
        named = waves.names_items(items) and (self.names_items or workflow.patched(ITEM_NAMES))
        self.items = items
        self.keys = [waves.item_key(item, named=named) for item in items]
        self.total = len(items)
        return await self._waves()

    async def _open(self) -> int:
        """Open the inventory file on the worker; the number of items to run."""
        request = inventory.open_request(
            self.fan.foreach,
            self.host.context(),
            self.node.id,
            self.host.redriven_in_store(self.node.id) if self.host.recording else None,
        )
        opened = await call_activity(
            INVENTORY_OPEN_ACTIVITY,
            request,
            activity_id=f"inventory:{self.node.id}",
            summary=f"open the inventory of {self.node.name}"[:200],
            retry=inventory.RETRY,
            timeouts=inventory.TIMEOUTS,
        )
        self.inventory = {**request, "sha256": opened["sha256"]}
        self.named = bool(opened.get("named"))
        return int(opened["count"])

    async def _waves(self) -> dict[str, Any]:
        node = self.node
        specs = self.fan.waves
        bounds = waves.bounds(self.total, specs)
        for b in bounds:
            spec = specs[b.spec] if b.spec >= 0 else None
            size = b.end - b.start
            self.waves.append(
                {
                    "name": b.name,
                    "gate": f"{node.id}/{b.name}" if spec is not None and spec.approval else None,
                    "size": size,
                    "first": b.start,
                    "budget": waves.wave_budget(
                        b.spec == 0,
                        size,
                        spec,
                        self.fan.max_failures,
                        self.fan.max_failures_percent,
                        first_defaults_to_zero=not self.legacy,
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
        self.host.touch()
        # Batches write their items' rows under the run's row: make sure it exists.
        await self.host.store_drained()
        for n, (b, entry) in enumerate(zip(bounds, self.waves, strict=True)):
            spec = specs[b.spec] if b.spec >= 0 else None
            await self._before_wave(b, spec, entry)
            if await self._wave(b, entry):
                continue
            # Over budget: nothing more starts, in this wave or any later one.
            after = f" before wave '{self.waves[n + 1]['name']}'" if n + 1 < len(bounds) else ""
            self.host.budget_spent(self.node, b.name, entry["failed"], entry["budget"])
            raise StepFailed("FailureBudgetExceeded", self._over_budget(b, entry) + after, 1)
        return self.output()

    def _over_budget(self, b: waves.WaveBounds, entry: WaveJson) -> str:
        failed = [f["item"] for f in self.failures if f["index"] >= b.start]
        count = max(entry["failed"], len(failed))  # the kept failures may be fewer
        shown = failed[: waves.NAMED_IN_ERROR]
        named = ", ".join(shown)
        more = f" and {count - len(shown)} more" if count > len(shown) else ""
        return (
            f"wave '{b.name}' had {count} failed "
            f"item{'s' if count != 1 else ''}, over its budget of "
            f"{entry['budget']}: {named}{more}; the campaign stopped"
        )

    async def _before_wave(self, b: waves.WaveBounds, spec: Wave | None, entry: WaveJson) -> None:
        if spec is not None and spec.pause_ms:
            self.host.touch()
            entry["status"] = "pausing"
            entry["until"] = iso(workflow.now() + timedelta(milliseconds=spec.pause_ms))
            await workflow.sleep(
                timedelta(milliseconds=spec.pause_ms),
                summary=f"pause before wave {b.name} of {self.node.id}",
            )
        if spec is not None and spec.approval:
            entry["status"] = "waiting"
            assert entry["gate"] is not None  # a wave with an approval has a gate
            await self.host.open_gate(self.node, self._gate_params(b, spec), entry["gate"])
        await self.host.wave_window(self.node, b.name)
        if self.host.paused:
            entry["status"] = "paused"
            await self.host.unpaused()

    def _gate_params(self, b: waves.WaveBounds, spec: Wave) -> dict[str, Any]:
        done = "; ".join(
            f"{w['name']}: {w['succeeded']} succeeded, {w['failed']} failed"
            for w in self.waves
            if w["status"] in ("succeeded", "failed")
        )
        message = (
            f"Start wave '{b.name}' of {self.node.name}: items {b.start + 1}-{b.end} of "
            f"{self.total}?" + (f" So far {done}." if done else "")
        )
        return {
            "message": message,
            "approvers": list(spec.approvers),
            "min_approvals": spec.min_approvals or 1,
            # A wave gate without approvers: anyone may approve, the operator running it too.
            "allow_self_approval": True,
            "timeout": durations.format_ms(spec.timeout_ms) if spec.timeout_ms else "24h",
            "on_timeout": "reject",
            "modifiable": [],
        }

    async def _wave(self, b: waves.WaveBounds, entry: WaveJson) -> bool:
        """Run one wave's items; False when it exceeded its failure budget."""
        entry["status"] = "running"
        entry["started_at"] = iso(workflow.now())
        self.host.touch()
        node = self.node
        self.host.audit(
            "wave_started", None, {"step": node.id, "wave": b.name, "items": b.end - b.start}
        )
        requests: list[BatchItem] | None = None
        if self.inventory is not None:
            # Each batch reads and renders its own page of the inventory.
            cuts = [
                (first, min(first + waves.BATCH_ITEMS, b.end))
                for first in range(b.start, b.end, waves.BATCH_ITEMS)
            ]
        else:
            # Rendered now, not at the start: a decision at a gate may have changed inputs.
            requests, sizes = [], []
            for i in range(b.start, b.end):
                item, size = render.fanout_item(
                    i,
                    self.keys[i],
                    node.with_,
                    self.host.context(**{self.fan.as_: self.items[i]}),
                    node.capabilities.script,
                    node.secrets,
                )
                if size > PAYLOAD_LIMIT:
                    raise StepFailed("PayloadsTooLarge", render.item_too_large(item.key, size), 1)
                self.host.screen(node.id, item.params, item.script_env)
                requests.append(item)
                sizes.append(size)
            cuts = [(b.start + first, b.start + end) for first, end in waves.batches(sizes)]
        for number, (first, end) in enumerate(cuts, start=1):
            await self.host.unpaused()
            if requests is None:
                source = self._page_source(first, end)
                result = await self._batch(entry, first, end - 1, number, [], source)
            else:
                chosen = requests[first - b.start : end - b.start]
                result = await self._batch(entry, first, end - 1, number, chosen)
            self._merge(entry, result)
            self.finished_before = end
            if result["exceeded"]:
                self.not_started += b.end - end + len(result["not_started"])
                self._wave_finished(entry, "failed")
                return False
        self._wave_finished(entry, "succeeded")
        return True

    def _page_source(self, first: int, end: int) -> PagedSource:
        """What a batch of a fan-out from a file needs to read and render its page, with
        the run's facts as they are now (a decision at a gate may have changed inputs)."""
        assert self.inventory is not None
        node = self.node
        source = PagedSource(
            inventory=self.inventory,
            start=first,
            end=end,
            named=self.named,
            loop_var=self.fan.as_,
            with_=node.with_,
            script=node.capabilities.script,
            secrets=[list(p) for p in node.secrets],
            context=inventory.snapshot(self.host.context()),
        )
        size = payload_size(source.context)
        if size > PAYLOAD_LIMIT // 2:
            raise StepFailed(
                "PayloadsTooLarge",
                f"the inputs and step outputs the items' templates may read are {size} "
                f"bytes, over the {PAYLOAD_LIMIT // 2}-byte limit of a batch of a "
                "fan-out from a file; keep large outputs out of earlier steps",
                1,
            )
        return source

    def _wave_finished(self, entry: WaveJson, status: str) -> None:
        entry["status"] = status
        entry["finished_at"] = iso(workflow.now())
        self.host.touch()
        detail = {k: entry[k] for k in ("succeeded", "failed", "skipped", "budget", "status")}
        self.host.audit(
            "wave_finished", None, {"step": self.node.id, "wave": entry["name"], **detail}
        )

    async def _batch(
        self,
        entry: WaveJson,
        first: int,
        last: int,
        number: int,
        items: list[BatchItem],
        source: PagedSource | None = None,
    ) -> BatchResult:
        node = self.node
        info = workflow.info()
        budget = entry["budget"]
        assert node.activity is not None and node.retry is not None
        batch = BatchInput(
            run_id=info.workflow_id,
            step=node.id,
            name=node.name,
            wave=entry["name"],
            activity=node.activity,
            retry=to_json(node.retry),
            timeouts=to_json(node.timeouts),
            items=items,
            concurrency=self.concurrency,
            budget=None if budget is None else budget - entry["failed"],
            keep_outputs=self.total <= waves.OUTPUT_ITEMS,
            paused=self.host.paused,
            skip=sorted(i for i in self.skipped_by_operator if first <= i <= last),
            store_run_id=info.run_id if self.host.recording else "",
            authenticated=self.authenticated,
            trust=self.trust,
        )
        if source is not None:
            batch.source = source
            batch.skip_names = sorted(self.skipped_names)
        child_id = f"{info.workflow_id}.{node.id}.{entry['name']}.{number}"
        handle = await workflow.start_child_workflow(
            BATCH_WORKFLOW_TYPE,
            batch,
            id=child_id,
            static_summary=f"{node.name}: wave {entry['name']}, items {first + 1}-{last + 1}",
        )
        self.batch = handle
        entry["batch"] = child_id
        try:
            return cast(BatchResult, await handle)
        except ChildWorkflowError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type in PAGE_FAILURES:
                # A batch of a fan-out from a file could not read or render its page.
                raise StepFailed(cause.type, cause.message, 1) from None
            raise child_failure(exc, "BatchFailed", f"batch {child_id}") from None
        finally:
            self.batch = None
            entry["batch"] = None

    def _merge(self, entry: WaveJson, result: BatchResult) -> None:
        self.host.touch()
        entry["succeeded"] += result["succeeded"]
        entry["failed"] += result["failed"]
        entry["skipped"] += len(result["skipped"])
        self.failed_count += len(result["failures"])
        # Failed items are kept to name them (in the output, errors and `status`), up to a
        # bound: 100,000 failed hosts must not outgrow the run's memory and payloads.
        room = FAILURES_KEPT - len(self.failures)
        self.failures.extend(result["failures"][: max(room, 0)])
        self.skipped.extend(result["skipped"])
        if self.total <= waves.OUTPUT_ITEMS:
            for index, value in (result.get("page") or {}).items():
                # A small fan-out from a file: the items its batches read.
                self._fill(int(index), value)
            for key, value in result["outputs"].items():
                self.status[int(key)] = "succeeded"
                self.outputs[int(key)] = value
            for failure in result["failures"]:
                self.status[failure["index"]] = "failed"
            for index in result["skipped"]:
                self.status[index] = "skipped"

    # -- live control ----------------------------------------------------------------------

    async def set_concurrency(self, value: int) -> None:
        self.concurrency = value
        await self.tell_batch({"concurrency": value})

    def _fill(self, index: int, value: Any) -> None:
        while len(self.items) <= index:
            self.items.append(None)
            self.keys.append("")
        self.items[index] = value
        self.keys[index] = waves.item_key(value, named=self.named)

    @property
    def paged(self) -> bool:
        """A fan-out from a file: the run knows its items' names only batch by batch."""
        return self.inventory is not None

    async def skip(self, names: list[str]) -> None:
        if self.paged:
            # Each batch leaves out the items of these names in its page, when it reaches
            # them: the run does not hold the names of 100,000 items.
            self.skipped_names.update(names)
            await self.tell_batch({"skip_names": names})
            return
        indexes, _ = self.indexes(names)
        self.skipped_by_operator.update(indexes)
        await self.tell_batch({"skip": indexes})

    async def tell_batch(self, change: dict[str, Any]) -> None:
        """Forward a control change to the running batch, if there is one."""
        if self.batch is None:
            return
        if self.authenticated:
            self.sent += 1
            batch_id = self.batch.id
            change = {
                **change,
                "seq": self.sent,
                "mac": internal.mac("batch", batch_id, self.sent, change),
            }
        # The batch may have just finished; the next one starts with the new settings.
        with contextlib.suppress(Exception):
            await self.batch.signal(BATCH_CONTROL_SIGNAL, change)

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
