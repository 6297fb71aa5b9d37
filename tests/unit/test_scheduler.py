"""The scheduler on its own: no Temporal, plain asyncio, invented step outcomes.

docs/engine.md ("Which step runs, and when") is the specification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.engine.scheduler import TERMINAL, Scheduler, StepEnd
from runner.plan.model import Compensation, Node


def node(
    sid: str,
    needs: tuple[str, ...] = (),
    rule: str = "all_succeeded",
    on_failure: str = "fail",
    compensate: bool = False,
    section: str = "steps",
) -> Node:
    comp = (
        Compensation(
            type="shell",
            runs_in="activity",
            activity="shell",
            name=f"undo {sid}",
            with_={},
            retry=None,
            timeouts=None,
        )
        if compensate
        else None
    )
    return Node(
        id=sid,
        name=sid,
        type="shell",
        runs_in="activity",
        activity="shell",
        with_={},
        needs=needs,
        trigger_rule=rule,
        when=None,
        on_failure=on_failure,
        retry=None,
        timeouts=None,
        fanout=None,
        compensate=comp,
        section=section,
        source="test.yaml:1:1",
    )


@dataclass
class FakeRun:
    """A host whose steps end as `outcomes` say, after `delays` turns of the event loop."""

    outcomes: dict[str, str] = field(default_factory=dict)  # succeeded | failed | skipped
    delays: dict[str, int] = field(default_factory=dict)
    paused: bool = False
    status: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    in_finally: dict[str, bool] = field(default_factory=dict)
    running_now: int = 0
    most_at_once: int = 0
    violations: list[str] = field(default_factory=list)
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def knows(self, step_id: str) -> bool:
        return step_id in self.needs

    def status_of(self, step_id: str) -> str:
        return self.status.get(step_id, "pending")

    def skip(self, node: Node, reason: str) -> None:
        self.status[node.id] = "skipped"
        self.reasons[node.id] = reason

    def stopping(self, step_id: str, reason: str) -> None:
        self.reasons[step_id] = reason

    async def run_step(self, node: Node, in_finally: bool) -> StepEnd:
        for need in node.needs:
            if self.status_of(need) not in TERMINAL:
                self.violations.append(f"{node.id} started before {need} ended")
        self.started.append(node.id)
        self.in_finally[node.id] = in_finally
        self.status[node.id] = "running"
        self.running_now += 1
        self.most_at_once = max(self.most_at_once, self.running_now)
        try:
            for _ in range(self.delays.get(node.id, 1)):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.status[node.id] = "cancelled"
            raise
        finally:
            self.running_now -= 1
        outcome = self.outcomes.get(node.id, "succeeded")
        self.status[node.id] = outcome
        self.finished.append(node.id)
        return StepEnd(outcome, f"{node.id} failed" if outcome == "failed" else None)

    async def wait(self, condition: Callable[[], bool], summary: str | None = None) -> None:
        while not condition():
            await asyncio.sleep(0)


def schedule(
    nodes: list[Node],
    finally_nodes: list[Node] | None = None,
    *,
    limit: int = 100,
    legacy: bool = False,
    **host: object,
) -> tuple[Scheduler, FakeRun]:
    """Run the steps, compensation order and finally as the interpreter does."""
    run = FakeRun(**host)  # type: ignore[arg-type]
    run.needs = {n.id: n.needs for n in (*nodes, *(finally_nodes or []))}
    scheduler = Scheduler(nodes, finally_nodes or [], limit, run, legacy=legacy)

    async def go() -> None:
        await scheduler.run_steps()
        await scheduler.run_finally()

    asyncio.run(go())
    return scheduler, run


def test_steps_without_needs_run_in_order_and_needs_make_a_graph():
    """Each step waits for its needs; independent steps start together."""
    _, run = schedule(
        [node("a"), node("b", ("a",)), node("c"), node("d", ("b", "c"))],
        delays={"a": 3, "c": 1},
    )
    assert run.started[:2] == ["a", "c"]
    assert run.started.index("d") > run.finished.index("b")
    assert not run.violations


def test_after_a_failure_the_trigger_rules_decide():
    """all_succeeded steps are skipped; all_done, one_failed and always still run."""
    scheduler, run = schedule(
        [
            node("setup"),
            node("broken", ("setup",)),
            node("next", ("broken",)),
            node("on-fail", ("broken",), "one_failed"),
            node("all-done", ("broken",), "all_done"),
            node("always", ("broken",), "always"),
            node("independent", ("setup",)),
        ],
        outcomes={"broken": "failed"},
        delays={"independent": 10},
    )
    assert run.status == {
        "setup": "succeeded",
        "broken": "failed",
        "next": "skipped",
        "on-fail": "succeeded",
        "all-done": "succeeded",
        "always": "succeeded",
        "independent": "cancelled",  # running when the step failed
    }
    assert run.reasons["next"] == "the run is failing"
    assert run.reasons["independent"] == "another step failed"
    assert scheduler.failing and scheduler.failure is not None
    assert scheduler.failure[0].id == "broken"


def test_runs_started_before_the_rules_keep_the_earlier_ones():
    """A replayed legacy run: after a failure only `always` steps start."""
    _, run = schedule(
        [
            node("broken"),
            node("on-fail", ("broken",), "one_failed"),
            node("always", ("broken",), "always"),
        ],
        outcomes={"broken": "failed"},
        legacy=True,
    )
    assert run.status["on-fail"] == "skipped" and run.status["always"] == "succeeded"


def test_skips_propagate_and_a_when_skip_counts_as_not_succeeded():
    """A skipped or failed need skips all_succeeded dependents, transitively."""
    _, run = schedule(
        [
            node("gated"),
            node("after-gated", ("gated",)),
            node("after-that", ("after-gated",)),
            node("cleanup", ("gated",), "all_done"),
            node("bad", on_failure="continue"),
            node("after-bad", ("bad",)),
            node("none-failed", ("gated",), "one_failed"),
        ],
        outcomes={"gated": "skipped", "bad": "failed"},
    )
    assert run.status["after-gated"] == "skipped"
    assert run.reasons["after-gated"] == "'gated' did not succeed (skipped)"
    assert run.status["after-that"] == "skipped"
    assert run.status["cleanup"] == "succeeded"
    assert run.status["after-bad"] == "skipped"
    assert run.reasons["none-failed"] == "none of its needs failed"


def test_on_failure_continue_does_not_fail_the_run():
    """A failed step with on_failure: continue counts as failed, and the run goes on."""
    scheduler, run = schedule(
        [node("bad", on_failure="continue"), node("other")], outcomes={"bad": "failed"}
    )
    assert not scheduler.failing and scheduler.failure is None
    assert run.status["other"] == "succeeded"


def test_compensations_run_in_reverse_order_of_completion():
    """Not plan order: the step that finished last is undone first."""
    nodes = [
        node("slow", compensate=True),
        node("fast", compensate=True),
        node("plain"),
        node("last", ("slow", "fast", "plain"), compensate=True),
        node("boom", ("last",)),
    ]
    scheduler, run = schedule(nodes, outcomes={"boom": "failed"}, delays={"slow": 5})
    assert run.finished[:4] == ["fast", "plain", "slow", "last"]
    assert [n.id for n in scheduler.compensations()] == ["last", "slow", "fast"]


def test_finally_runs_after_a_failure_and_a_failing_finally_fails_the_run():
    """finally steps run whatever happened; their failure fails the run, compensates nothing."""
    scheduler, run = schedule(
        [node("boom")],
        [node("report", section="finally"), node("also", ("report",), section="finally")],
        outcomes={"boom": "failed", "report": "failed"},
    )
    assert run.in_finally == {"boom": False, "report": True}
    assert run.status["also"] == "skipped"  # its need failed
    assert scheduler.failure is not None and scheduler.failure[0].id == "boom"

    scheduler, run = schedule(
        [node("fine")], [node("report", section="finally")], outcomes={"report": "failed"}
    )
    assert scheduler.failure is not None and scheduler.failure[0].id == "report"
    assert not scheduler.failing  # nothing is compensated after finally


def test_a_halted_run_starts_only_always_steps_and_leaves_nothing_pending():
    """After a cancel or the run's timeout, every step that will not run ends skipped."""
    run = FakeRun(delays={"long": 50})
    nodes = [
        node("first"),
        node("long", ("first",)),
        node("after", ("long",)),
        node("cleanup", ("long",), "always"),
        node("later", ("after",), "all_done"),
    ]
    run.needs = {n.id: n.needs for n in nodes}
    scheduler = Scheduler(nodes, [], 10, run)

    async def go() -> None:
        main = asyncio.create_task(scheduler.run_steps())
        while run.status.get("long") != "running":
            await asyncio.sleep(0)
        scheduler.halt("the run was cancelled")
        await scheduler.stop("the run was cancelled", force=True)
        await main

    asyncio.run(go())
    assert run.status == {
        "first": "succeeded",
        "long": "cancelled",
        "after": "skipped",
        "cleanup": "succeeded",
        "later": "skipped",
    }
    assert run.reasons["after"] == "the run was cancelled"


def test_the_concurrency_limit_is_never_exceeded():
    """Six independent steps with a limit of 2: never more than two at once."""
    _, run = schedule([node(f"s{i}") for i in range(6)], limit=2, delays={"s0": 3})
    assert run.most_at_once == 2
    assert len(run.finished) == 6


def test_a_paused_run_starts_nothing_until_it_is_resumed():
    """While paused, ready steps wait; resuming starts them."""
    run = FakeRun(paused=True)
    nodes = [node("a"), node("b", ("a",))]
    run.needs = {n.id: n.needs for n in nodes}
    scheduler = Scheduler(nodes, [], 10, run)

    async def go() -> None:
        main = asyncio.create_task(scheduler.run_steps())
        for _ in range(20):
            await asyncio.sleep(0)
        assert run.started == []
        run.paused = False
        scheduler.wake()
        await main

    asyncio.run(go())
    assert run.started == ["a", "b"]


RULES = ["all_succeeded", "all_done", "one_failed", "always"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[Node], dict[str, str], dict[str, int], int]:
    size = draw(st.integers(min_value=1, max_value=12))
    nodes: list[Node] = []
    outcomes: dict[str, str] = {}
    delays: dict[str, int] = {}
    for i in range(size):
        sid = f"s{i}"
        earlier = [n.id for n in nodes]
        needs = tuple(draw(st.lists(st.sampled_from(earlier), unique=True))) if earlier else ()
        nodes.append(
            node(
                sid,
                needs,
                draw(st.sampled_from(RULES)),
                draw(st.sampled_from(["fail", "continue"])),
                compensate=draw(st.booleans()),
            )
        )
        outcomes[sid] = draw(st.sampled_from(["succeeded", "succeeded", "failed", "skipped"]))
        delays[sid] = draw(st.integers(min_value=0, max_value=4))
    limit = draw(st.integers(min_value=1, max_value=5))
    return nodes, outcomes, delays, limit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.booleans())
def test_every_step_ends_and_none_starts_early(graph, legacy):
    """For random graphs and outcomes: every step ends in a terminal state, none starts
    before its needs ended, the limit holds, and compensations undo in reverse order."""
    nodes, outcomes, delays, limit = graph
    scheduler, run = schedule(nodes, limit=limit, legacy=legacy, outcomes=outcomes, delays=delays)
    assert not run.violations
    assert all(run.status_of(n.id) in TERMINAL for n in nodes), run.status
    assert run.most_at_once <= limit
    finished_ok = [sid for sid in run.finished if run.status[sid] == "succeeded"]
    undo = [n.id for n in scheduler.compensations()]
    assert undo == [sid for sid in reversed(finished_ok) if nodes[int(sid[1:])].compensate]


@pytest.mark.parametrize("legacy", [False, True])
def test_steps_whose_needs_can_never_finish_are_skipped(legacy):
    """A need outside the section never ends: the step is skipped, never left pending."""
    run = FakeRun()
    nodes = [node("a", ("ghost",))]
    run.needs = {"a": ("ghost",), "ghost": ()}
    scheduler = Scheduler(nodes, [], 10, run, legacy=legacy)
    asyncio.run(scheduler.run_steps())
    assert run.status["a"] == "skipped"
    assert run.reasons["a"] == "its needs can never finish"
