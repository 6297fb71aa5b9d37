"""Fan-out campaigns on a real dev server: waves, budgets, wave gates, live control.

Items are real shell steps. Where a test needs items to be in flight at a known
moment, they wait for a file the test creates, so no test races a sleep.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from runner.client import runs as runs
from runner.client import state as client_state
from tests.helpers import updates
from tests.helpers.gates import wait_for_gate
from tests.helpers.processes import running
from tests.helpers.runs import run_runbook, write_runbook
from tests.helpers.waiting import eventually, eventually_async

HEAD = "apiVersion: qlrf/v1\nkind: Campaign\nname: fleet\n"
# A fleet given as a list of host names, and a directory where items leave marks.
FLEET = (
    HEAD
    + """
inputs:
  hosts: {type: array, items: {type: string}}
  dir: {type: string}
steps:
"""
)


def hosts(n: int) -> str:
    return "hosts=" + json.dumps([f"h{i:02d}" for i in range(1, n + 1)])


async def live_state(client: Client, handle: Any) -> dict[str, Any]:
    return (await client_state.view_of(handle, client)).to_json()


def test_waves_follow_the_list_in_order_with_cumulative_sizes(run, run_store):
    outcome = run(
        HEAD
        + """
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    as: host
    concurrency: 8
    waves:
      - {name: canary, size: 1}
      - {name: staged, size: "10%"}
      - {name: fleet, size: "100%"}
    with: {command: [echo, "patched {{ host }}"]}
outputs:
  waves: "{{ steps.patch.output.waves | map(attribute='size') | list }}"
""",
        [hosts(50)],
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    output = outcome.step("patch")["output"]
    assert [(w["name"], w["size"], w["status"]) for w in output["waves"]] == [
        ("canary", 1, "succeeded"),
        ("staged", 4, "succeeded"),
        ("fleet", 45, "succeeded"),
    ]
    assert outcome.result == {"waves": [1, 4, 45]}
    assert (output["succeeded"], output["failed"], output["skipped"]) == (50, 0, 0)
    assert [i["item"] for i in output["items"]] == [f"h{i:02d}" for i in range(1, 51)]
    assert [i["output"]["stdout"] for i in output["items"][:2]] == [
        "patched h01\n",
        "patched h02\n",
    ]

    # Every item of a wave ended before the first item of the next one started.
    async def rows() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(run_store)
        try:
            return await conn.fetch(
                "SELECT e.item, e.status, e.started_at, e.finished_at FROM step_events e "
                "JOIN runs r ON r.run_id = e.run_id WHERE r.workflow_id = $1 "
                "AND e.item IS NOT NULL",
                outcome.workflow_id,
            )
        finally:
            await conn.close()

    by_item = {r["item"]: r for r in asyncio.run(rows())}
    assert len(by_item) == 50 and {r["status"] for r in by_item.values()} == {"succeeded"}
    waves = [["h01"], [f"h{i:02d}" for i in range(2, 6)], [f"h{i:02d}" for i in range(6, 51)]]
    for earlier, later in itertools.pairwise(waves):
        assert max(by_item[h]["finished_at"] for h in earlier) <= min(
            by_item[h]["started_at"] for h in later
        )


def test_concurrency_limit_is_never_exceeded(run, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    outcome = run(
        FLEET
        + """
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    concurrency: 3
    with:
      script: |
        touch "{{ inputs.dir }}/run.{{ item }}"
        ls "{{ inputs.dir }}" | grep -c '^run\\.' >> "{{ inputs.dir }}/counts" || true
        sleep 0.2
        rm "{{ inputs.dir }}/run.{{ item }}"
""",
        [hosts(15), f"dir={marks}"],
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    counts = [int(line) for line in (marks / "counts").read_text().split()]
    assert len(counts) == 15
    # Each item counts the items running with it: never more than 3, and 3 is reached.
    assert max(counts) == 3


def test_exceeded_budget_stops_before_the_next_wave(run, tmp_path):
    """Over budget: nothing new starts, the item in flight finishes, later waves never start."""
    outcome = run(
        FLEET
        + """
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    concurrency: 2
    retry: {max_attempts: 1}
    waves:
      - {name: first, size: 6}
      - {name: rest, size: "100%"}
    max_failures: 0
    with:
      script: |
        if [ "{{ item }}" = h01 ]; then touch "{{ inputs.dir }}/h01-failed"; exit 3; fi
        # h02 is in flight when h01 fails: it must be let finish.
        while [ ! -e "{{ inputs.dir }}/h01-failed" ]; do sleep 0.02; done
        sleep 0.5
        echo done
  - id: after
    type: shell
    needs: [patch]
    with: {command: [echo, never]}
""",
        [hosts(10), f"dir={tmp_path}"],
    )
    assert outcome.state["status"] == "failed"
    step = outcome.step("patch")
    assert step["error"]["type"] == "FailureBudgetExceeded"
    assert "h01" in step["error"]["message"] and "before wave 'rest'" in step["error"]["message"]
    output = step["output"]
    assert [(w["name"], w["status"], w["succeeded"], w["failed"]) for w in output["waves"]] == [
        ("first", "failed", 1, 1),
        ("rest", "not_started", 0, 0),
    ]
    statuses = {i["item"]: i["status"] for i in output["items"]}
    assert statuses["h01"] == "failed" and statuses["h02"] == "succeeded"
    assert [h for h, s in statuses.items() if s == "not_started"] == [
        f"h{i:02d}" for i in range(3, 11)
    ]
    assert output["not_started"] == 8
    assert outcome.step("after")["status"] == "skipped"


def test_a_budget_in_percent_tolerates_failures_within_it(run):
    """Without waves the whole list is one wave, with the step's budget: 10% of 20 is 2."""
    outcome = run(
        HEAD
        + """
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    retry: {max_attempts: 1}
    max_failures: "10%"
    with:
      script: |
        case "{{ item }}" in h03|h07) exit 1;; esac
""",
        [hosts(20)],
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    output = outcome.step("patch")["output"]
    assert (output["succeeded"], output["failed"]) == (18, 2)
    assert sorted(i["item"] for i in output["items"] if i["status"] == "failed") == ["h03", "h07"]


def test_a_failed_canary_stops_the_campaign_whatever_the_steps_budget(run):
    """The first wave's budget is 0 unless the wave sets its own: a canary of one host that
    fails stops the campaign, though the step tolerates 2 failures a wave."""
    outcome = run(
        HEAD
        + """
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    retry: {max_attempts: 1}
    waves:
      - {name: canary, size: 1}
      - {name: rest, size: "100%"}
    max_failures: 2
    with:
      script: 'test "{{ item }}" != h01'
""",
        [hosts(6)],
    )
    assert outcome.state["status"] == "failed"
    step = outcome.step("patch")
    assert step["error"]["type"] == "FailureBudgetExceeded"
    assert "over its budget of 0: h01" in step["error"]["message"]
    waves = [(w["name"], w["status"], w["failed"]) for w in step["output"]["waves"]]
    assert waves == [("canary", "failed", 1), ("rest", "not_started", 0)]


def test_a_wave_may_carry_its_own_budget(run):
    """A wave's own max_failures wins over the defaults, in the first wave and later ones."""
    outcome = run(
        HEAD
        + """
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    retry: {max_attempts: 1}
    waves:
      - {name: canary, size: 2, max_failures: 1}
      - {name: rest, size: "100%", max_failures: "50%"}
    max_failures: 0
    with:
      script: 'case "{{ item }}" in h01|h03|h04) exit 1;; esac'
""",
        [hosts(6)],
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    waves = [
        (w["name"], w["failed"], w["status"]) for w in outcome.step("patch")["output"]["waves"]
    ]
    assert waves == [("canary", 1, "succeeded"), ("rest", 2, "succeeded")]
    budgets = [w["budget"] for w in outcome.step("patch")["fanout"]["waves"]]
    assert budgets == [1, 2]


WAVE_GATE = (
    HEAD
    + """
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    waves:
      - {name: canary, size: 1}
      - {name: fleet, size: "100%", approval: true, approvers: [alice]}
    with: {command: [echo, "{{ item }}"]}
"""
)


def test_a_wave_waits_for_its_approval(temporal_address, tmp_path):
    path = write_runbook(tmp_path, WAVE_GATE)

    async def scenario() -> Any:
        client = await Client.connect(temporal_address)
        seen: dict[str, Any] = {}

        async def approve(handle: Any) -> None:
            state = await wait_for_gate(handle, "patch/fleet")
            seen["waves"] = [
                (w["name"], w["status"]) for w in state["steps"]["patch"]["fanout"]["waves"]
            ]
            seen["gate"] = state["gates"][0]
            refused = await updates.update(
                client,
                handle.id,
                "decide",
                {"gate": "patch/fleet", "decision": "approve", "by": "mallory"},
            )
            seen["refused"] = refused
            accepted = await updates.update(
                client,
                handle.id,
                "decide",
                {"gate": "patch/fleet", "decision": "approve", "by": "alice", "comment": "go"},
            )
            seen["accepted"] = accepted

        outcome = await run_runbook(
            temporal_address, path, [hosts(5)], client=client, while_running=approve
        )
        return outcome, seen

    outcome, seen = asyncio.run(scenario())
    assert seen["waves"] == [("canary", "succeeded"), ("fleet", "waiting")]
    assert seen["gate"]["gate"] == "patch/fleet" and seen["gate"]["approvers"] == ["alice"]
    assert "Start wave 'fleet'" in seen["gate"]["message"]
    assert seen["refused"][0] is False and "mallory" in seen["refused"][1]
    assert seen["accepted"][0] is True
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    assert outcome.step("patch")["output"]["succeeded"] == 5
    assert outcome.state["gates"][0]["approvals"][0]["by"] == "alice"


def test_a_rejected_wave_fails_the_step_and_runs_none_of_its_items(temporal_address, tmp_path):
    path = write_runbook(tmp_path, WAVE_GATE)

    async def scenario() -> Any:
        client = await Client.connect(temporal_address)

        async def reject(handle: Any) -> None:
            await wait_for_gate(handle, "patch/fleet")
            decision = {"gate": "patch/fleet", "decision": "reject", "by": "alice"}
            assert (await updates.update(client, handle.id, "decide", decision))[0]

        return await run_runbook(
            temporal_address, path, [hosts(5)], client=client, while_running=reject
        )

    outcome = asyncio.run(scenario())
    assert outcome.state["status"] == "failed"
    assert outcome.step("patch")["error"]["type"] == "ApprovalRejected"
    waves = outcome.step("patch")["output"]["waves"]
    assert [(w["name"], w["succeeded"], w["status"]) for w in waves] == [
        ("canary", 1, "succeeded"),
        ("fleet", 0, "not_started"),
    ]
    assert outcome.step("patch")["output"]["not_started"] == 4


def test_pause_resume_concurrency_and_skip_in_flight(temporal_address, tmp_path, run_store):
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write_runbook(
        tmp_path,
        FLEET
        + """
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    concurrency: 2
    with:
      script: |
        touch "{{ inputs.dir }}/run.{{ item }}"
        ls "{{ inputs.dir }}" | grep -c '^run\\.' >> "{{ inputs.dir }}/counts" || true
        while [ ! -e "{{ inputs.dir }}/release" ]; do sleep 0.02; done
        rm "{{ inputs.dir }}/run.{{ item }}"
  - id: after
    type: shell
    needs: [patch]
    with: {command: [echo, after]}
""",
    )

    def running() -> int:
        return len(list(marks.glob("run.*")))

    async def scenario() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        seen: dict[str, Any] = {}

        async def control(handle: Any) -> None:
            async def send(**request: Any) -> tuple[bool, Any]:
                return await updates.update(client, handle.id, "control", {"by": "ops", **request})

            async def count(n: int) -> bool:
                return running() == n

            await eventually_async(lambda: count(2), "2 items run")
            seen["refusals"] = [
                await send(action="resume"),
                await send(action="concurrency", step="after", concurrency=4),
                await send(action="concurrency", step="patch", concurrency=0),
                await send(action="skip", step="patch", items=["nope"]),
            ]
            assert (await send(action="concurrency", step="patch", concurrency=4))[0]
            await eventually_async(lambda: count(4), "4 items run after the concurrency change")
            assert (await send(action="pause", comment="look first"))[0]
            assert (await send(action="skip", step="patch", items=["h08"]))[0]
            (marks / "release").touch()

            async def drained() -> Any:
                state = await live_state(client, handle)
                wave = state["steps"]["patch"]["fanout"]["waves"][0]
                return state if wave["running"] == 0 and wave["succeeded"] == 4 else None

            state = await eventually_async(drained, "the 4 items in flight finish")
            seen["paused_state"] = state
            # Paused: nothing new started, so exactly the 4 items in flight have run.
            seen["counted_while_paused"] = len((marks / "counts").read_text().split())
            assert (await send(action="resume"))[0]

        outcome = await run_runbook(
            temporal_address, path, [hosts(8), f"dir={marks}"], client=client, while_running=control
        )
        seen["outcome"] = outcome
        return seen

    seen = asyncio.run(scenario())
    reasons = [r[1] for r in seen["refusals"]]
    assert all(ok is False for ok, _ in seen["refusals"])
    assert "not paused" in reasons[0]
    assert "'after' is not a fan-out step" in reasons[1]
    assert "at least 1" in reasons[2]
    assert "no item 'nope'" in reasons[3]
    assert seen["paused_state"]["paused"] is True
    assert seen["counted_while_paused"] == 4
    outcome = seen["outcome"]
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    output = outcome.step("patch")["output"]
    assert (output["succeeded"], output["skipped"]) == (7, 1)
    assert [i["item"] for i in output["items"] if i["status"] == "skipped"] == ["h08"]
    counts = [int(c) for c in (marks / "counts").read_text().split()]
    assert len(counts) == 7 and max(counts) <= 4
    controls = outcome.state["controls"]
    assert [(c["action"], c["by"]) for c in controls] == [
        ("concurrency", "ops"),
        ("pause", "ops"),
        ("skip", "ops"),
        ("resume", "ops"),
    ]
    assert controls[1]["comment"] == "look first"

    async def audit() -> list[str]:
        conn = await asyncpg.connect(run_store)
        try:
            rows = await conn.fetch(
                "SELECT a.action FROM audit_log a JOIN runs r ON r.run_id = a.run_id "
                "WHERE r.workflow_id = $1 ORDER BY a.seq",
                outcome.workflow_id,
            )
            return [r["action"] for r in rows]
        finally:
            await conn.close()

    actions = asyncio.run(audit())
    assert [a for a in actions if a.endswith(("_set", "_paused", "_resumed", "_skipped"))] == [
        "concurrency_set",
        "run_paused",
        "items_skipped",
        "run_resumed",
    ]


def test_foreach_over_an_earlier_steps_output_and_an_empty_list(run):
    outcome = run(
        HEAD
        + """
steps:
  - id: inventory
    type: shell
    with: {command: [echo, '{"web": ["w1", "w2"], "none": []}'], parse: json}
  - id: web
    type: shell
    foreach: "{{ steps.inventory.output.json.web }}"
    with: {command: [echo, "{{ item }}"]}
  - id: nothing
    type: shell
    foreach: "{{ steps.inventory.output.json.none }}"
    with: {command: [echo, "{{ item }}"]}
  - id: not-a-list
    type: shell
    foreach: "{{ steps.inventory.output.json }}"
    on_failure: continue
    with: {command: [echo, "{{ item }}"]}
"""
    )
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    assert [i["output"]["stdout"] for i in outcome.step("web")["output"]["items"]] == [
        "w1\n",
        "w2\n",
    ]
    assert outcome.step("nothing")["output"]["items"] == []
    assert outcome.step("not-a-list")["error"]["type"] == "InvalidForeach"


# Five thousand sandboxed processes: about 45 s on an idle 2-core machine (bench/fanout.py
# measures 10,000 and, from a file, 100,000). The guard is for a hang, not a busy machine.
ITEMS = 5_000
TEN_THOUSAND_GUARD_SECONDS = 1200


@pytest.mark.timeout(TEN_THOUSAND_GUARD_SECONDS + 60)
def test_thousands_of_items_keep_every_history_small(temporal_address, tmp_path, run_store):
    """5,000 real no-op shell items in six batches: every history (the run's and each
    batch's) is fetched and stays under Temporal's 10,240-event warning, and the store
    has a row per item."""
    path = write_runbook(
        tmp_path,
        HEAD
        + """
inputs:
  hosts: {type: array, items: {type: string}}
steps:
  - id: noop
    type: shell
    foreach: "{{ inputs.hosts }}"
    as: host
    waves:
      - {name: canary, size: 10}
      - {name: fleet, size: "100%"}
    with: {command: ["true"]}
""",
    )
    inventory = tmp_path / "inputs.json"
    inventory.write_text(json.dumps({"hosts": [f"host-{i:05d}" for i in range(ITEMS)]}))

    async def scenario() -> tuple[Any, dict[str, int]]:
        from runner.pipeline import compile_file

        client = await Client.connect(temporal_address)
        compiled = compile_file(path, [], inventory)
        outcome = await run_runbook(
            temporal_address,
            path,
            [f"hosts={json.dumps(compiled.inputs['hosts'])}"],
            client=client,
            timeout=TEN_THOUSAND_GUARD_SECONDS,
        )
        sizes = {outcome.workflow_id: len(json.loads(outcome.history_json)["events"])}
        for wave, batches in (("canary", 1), ("fleet", (ITEMS - 10 + 999) // 1000)):
            for n in range(1, batches + 1):
                child = f"{outcome.workflow_id}.noop.{wave}.{n}"
                history = await client.get_workflow_handle(child).fetch_history()
                sizes[child] = len(history.events)
        return outcome, sizes

    outcome, sizes = asyncio.run(scenario())
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    output = outcome.step("noop")["output"]
    assert (output["succeeded"], output["failed"], output["items"]) == (ITEMS, 0, [])
    assert [(w["name"], w["size"]) for w in output["waves"]] == [
        ("canary", 10),
        ("fleet", ITEMS - 10),
    ]
    # 1 canary batch, and 4,990 fleet items in batches of at most 1,000.
    assert len(sizes) == 1 + 1 + 5
    assert max(sizes.values()) < 10_240, sizes
    print(f"largest history: {max(sizes.values())} events; the run's: {sizes[outcome.workflow_id]}")

    async def rows() -> int:
        conn = await asyncpg.connect(run_store)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM step_events e JOIN runs r ON r.run_id = e.run_id "
                "WHERE r.workflow_id = $1 AND e.item IS NOT NULL AND e.status = 'succeeded'",
                outcome.workflow_id,
            )
        finally:
            await conn.close()

    assert asyncio.run(rows()) == ITEMS


def test_cancel_stops_the_batch_and_kills_the_items_in_flight(temporal_address, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    marker = f"fanout-cancel-{uuid.uuid4().hex}"  # in the items' command lines
    path = write_runbook(
        tmp_path,
        FLEET
        + """
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    concurrency: 2
    with:
      script: |
        # MARKER
        echo $$ > "{{ inputs.dir }}/run.{{ item }}"
        while true; do sleep 0.05; done
finally:
  - id: cleanup
    type: shell
    with: {command: [echo, cleaned]}
""".replace("MARKER", marker),
    )

    async def scenario() -> tuple[Any, str]:
        client = await Client.connect(temporal_address)

        async def cancel(handle: Any) -> None:
            async def two_running() -> bool:
                pids = [m.read_text().strip() for m in marks.glob("run.*")]
                return len(pids) == 2 and all(pids)

            await eventually_async(two_running, "2 items run")
            await handle.cancel()

        outcome = await run_runbook(
            temporal_address, path, [hosts(6), f"dir={marks}"], client=client, while_running=cancel
        )
        child = await client.get_workflow_handle(f"{outcome.workflow_id}.patch.all.1").describe()
        assert child.status is not None
        return outcome, child.status.name

    outcome, child_status = asyncio.run(scenario())
    assert outcome.state["status"] == "cancelled"
    assert outcome.step("patch")["status"] == "cancelled"
    assert outcome.step("cleanup")["status"] == "succeeded"  # finally runs after a cancel
    assert child_status == "CANCELED"
    [wave] = outcome.step("patch")["output"]["waves"]
    assert wave["status"] == "cancelled"
    # The two shell processes were stopped, not left looping.
    assert len(list(marks.glob("run.*"))) == 2
    eventually(lambda: not running(marker), "the items' processes end", 10, poll=0.05)


def test_a_campaign_goes_on_across_worker_restarts(temporal_address, tmp_path):
    """Workers stop at the wave gate and in the middle of a batch; each new worker
    picks the run and its batch up from history, and every item ends succeeded."""
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    done = tmp_path / "done"
    done.mkdir()
    path = write_runbook(
        tmp_path,
        FLEET
        + """
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    concurrency: 4
    waves:
      - {name: canary, size: 3}
      - {name: rest, size: "100%", approval: true}
    with:
      script: |
        sleep 0.05
        touch "{{ inputs.dir }}/{{ item }}"
""",
    )
    compiled = compile_file(path, [hosts(60), f"dir={done}"])

    async def go() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        queue = f"test-{time.monotonic_ns()}"
        async with build_worker(client, task_queue=queue):
            handle, _ = await runs.start(
                client,
                compiled.plan,
                compiled.inputs,
                "tester",
                workflow_id=queue,
                task_queue=queue,
            )
            await wait_for_gate(handle, "patch/rest")
        async with build_worker(client, task_queue=queue):
            decision = {"gate": "patch/rest", "decision": "approve", "by": "alice"}

            async def approved() -> bool:
                # The new worker may not poll yet: `approve` says no worker answers, and
                # the person tries again, as here.
                accepted, said = await updates.update(client, queue, "decide", decision)
                assert accepted or "worker" in str(said), said
                return accepted

            await eventually_async(approved, "the approval accepted by the new worker", 60)

            async def some_done() -> bool:
                return len(list(done.iterdir())) >= 20

            await eventually_async(some_done, "20 items done")
        assert len(list(done.iterdir())) < 60  # the worker stopped in the middle of the batch
        async with build_worker(client, task_queue=queue):
            await asyncio.wait_for(handle.result(), 120)
            return (await client_state.view_of(handle)).to_json()

    state = asyncio.run(go())
    assert state["status"] == "succeeded", state["error"]
    output = state["steps"]["patch"]["output"]
    assert (output["succeeded"], output["failed"]) == (60, 0)
    assert [(w["name"], w["succeeded"]) for w in output["waves"]] == [("canary", 3), ("rest", 57)]
    assert {p.name for p in done.iterdir()} == {f"h{i:02d}" for i in range(1, 61)}


def test_a_batch_takes_control_only_from_its_run(temporal_address, tmp_path):
    """Signals to a fan-out's batch through the plain Temporal API: a forged resume, and
    the run's own resume read from the batch's history and sent again, while the run is
    paused. Neither starts an item; the run's own resume does."""
    from temporalio.api.enums.v1 import EventType

    marks = tmp_path / "marks"
    marks.mkdir()
    path = write_runbook(
        tmp_path,
        FLEET
        + """
  - id: patch
    type: shell
    foreach: "{{ inputs.hosts }}"
    concurrency: 1
    with:
      script: |
        touch "{{ inputs.dir }}/run.{{ item }}"
        while [ ! -e "{{ inputs.dir }}/release.{{ item }}" ]; do sleep 0.02; done
""",
    )

    def started() -> int:
        return len(list(marks.glob("run.*")))

    async def scenario() -> dict[str, Any]:
        client = await Client.connect(temporal_address)
        seen: dict[str, Any] = {}

        async def attack(handle: Any) -> None:
            async def send(**request: Any) -> None:
                ok, why = await updates.update(
                    client, handle.id, "control", {"by": "ops", **request}
                )
                assert ok, why

            async def count(n: int) -> bool:
                return started() == n

            await eventually_async(lambda: count(1), "the first item runs")
            batch = client.get_workflow_handle(f"{handle.id}.patch.all.1")
            await send(action="pause")
            await send(action="resume")
            await send(action="pause")
            resumes = []
            async for event in batch.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    attrs = event.workflow_execution_signaled_event_attributes
                    [change] = await client.data_converter.decode(attrs.input.payloads)
                    if change.get("paused") is False:
                        resumes.append(change)
            assert resumes, "the run's resume is in the batch's history"
            await batch.signal("control", {"paused": False})
            await batch.signal("control", resumes[0])
            (marks / "release.h01").touch()
            await asyncio.sleep(2)  # time enough for a second item to start, were it let
            seen["while_paused"] = started()
            await send(action="resume")
            for n in range(2, 5):
                await eventually_async(functools.partial(count, n), f"item {n} runs")
                (marks / f"release.h0{n}").touch()

        seen["outcome"] = await run_runbook(
            temporal_address, path, [hosts(4), f"dir={marks}"], client=client, while_running=attack
        )
        return seen

    seen = asyncio.run(scenario())
    assert seen["while_paused"] == 1
    assert seen["outcome"].state["status"] == "succeeded"
