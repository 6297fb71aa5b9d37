"""Fan-out from an inventory file (`foreach: {from_file: ...}`) on real servers.

The run never holds the inventory: it learns its size and sha256, and each batch
reads its own page on the worker. These tests run real shell items from files of
more than 1,000 lines (several batches per wave), and check what the histories
hold as well as what ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from runner.client import runs as runs
from runner.contract import RunInput
from tests.helpers import updates
from tests.helpers.cli import qlrf
from tests.helpers.runs import run_runbook, write_runbook
from tests.helpers.waiting import eventually_async

ITEMS = 1_500

WAVES = """\
apiVersion: qlrf/v1
kind: Campaign
name: {name}
inputs:
  inventory: {{type: string}}
  dir: {{type: string}}
steps:
  - id: patch
    type: shell
    foreach: {{from_file: "{{{{ inputs.inventory }}}}", format: {format}}}
    as: host
    concurrency: 100
    retry: {{max_attempts: 1}}
    waves:
      - {{name: canary, size: 1}}
      - {{name: half, size: "50%", max_failures: 2}}
      - {{name: rest, size: "100%", max_failures: 2}}
    with:
      script: |
        test ! -e "{{{{ inputs.dir }}}}/broken-{{{{ host.name }}}}"
        echo "{{{{ host.name }}}} {{{{ host.address }}}}"
"""


@pytest.fixture(autouse=True)
def inventories_here(tmp_path, monkeypatch):
    """The workers read inventories from this test's folder only (QLRF_INVENTORY_DIRS)."""
    monkeypatch.setenv("QLRF_INVENTORY_DIRS", str(tmp_path))


def _inventory(tmp_path: Path, count: int = ITEMS) -> Path:
    path = tmp_path / "fleet.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"name": f"web-{i:04d}", "address": f"10.0.{i // 250}.{i % 250}"})
            for i in range(count)
        )
        + "\n"
    )
    return path


def _events(history: Any) -> str:
    return json.dumps([str(e) for e in history.events])


async def _histories(client: Client, run_id: str, children: list[str]) -> dict[str, Any]:
    found = {run_id: await client.get_workflow_handle(run_id).fetch_history()}
    for child in children:
        found[child] = await client.get_workflow_handle(child).fetch_history()
    return found


def test_waves_run_in_pages_and_no_history_holds_the_inventory(temporal_address, tmp_path):
    """1,500 hosts from a JSON Lines file, in three waves: each batch holds only its
    page, and every item ran once with its own facts."""
    inventory = _inventory(tmp_path)
    path = write_runbook(tmp_path, WAVES.format(name="from-file", format="json"))

    async def scenario() -> tuple[Any, dict[str, Any]]:
        client = await Client.connect(temporal_address)
        outcome = await run_runbook(
            temporal_address,
            path,
            [f"inventory={inventory}", f"dir={tmp_path}"],
            client=client,
            timeout=240,
        )
        wid = outcome.workflow_id
        # canary 1; half 749 (one batch); rest 750 (one batch).
        children = [f"{wid}.patch.canary.1", f"{wid}.patch.half.1", f"{wid}.patch.rest.1"]
        return outcome, await _histories(client, wid, children)

    outcome, histories = asyncio.run(scenario())
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    output = outcome.step("patch")["output"]
    assert (output["succeeded"], output["failed"]) == (ITEMS, 0)
    assert [(w["name"], w["size"], w["status"]) for w in output["waves"]] == [
        ("canary", 1, "succeeded"),
        ("half", 749, "succeeded"),
        ("rest", 750, "succeeded"),
    ]
    run_text = _events(histories[outcome.workflow_id])
    # The run holds none of the items: no host name is in its history.
    assert "web-0000" not in run_text and "web-1499" not in run_text
    half = _events(histories[f"{outcome.workflow_id}.patch.half.1"])
    # A batch holds its own page and nothing else.
    assert "web-0001" in half and "web-0749" in half
    assert "web-0000" not in half and "web-0750" not in half
    assert max(len(h.events) for h in histories.values()) < 10_240


def test_a_budget_stops_the_waves_and_a_redrive_runs_only_what_did_not_succeed(
    env, tmp_path, run_store
):
    """3 broken hosts in the second wave, over its budget of 2: the third wave does not
    start. Fixed and redriven, only the failed and the never started run; every
    host succeeded exactly once over both runs (the run store says so)."""
    inventory = _inventory(tmp_path)
    name = f"from-file-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(WAVES.format(name=name, format="json"))
    for n in (10, 20, 30):
        (tmp_path / f"broken-web-{n:04d}").touch()

    def apply(*args: str) -> dict[str, Any]:
        done = qlrf(*args, "--format", "json", env=env, timeout=240)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        return json.loads(done.stdout)

    first = apply("apply", str(path), "-i", f"inventory={inventory}", "-i", f"dir={tmp_path}")
    assert first["status"] == "failed"
    step = first["steps"]["patch"]
    assert step["error"]["type"] == "FailureBudgetExceeded"
    assert all(f"web-00{n}" in step["error"]["message"] for n in (10, 20, 30))
    output = step["output"]
    assert [(w["name"], w["status"]) for w in output["waves"]] == [
        ("canary", "succeeded"),
        ("half", "failed"),
        ("rest", "not_started"),
    ]
    # Once over budget no item starts; those in flight finish.
    assert output["failed"] == 3 and output["not_started"] >= 750
    assert output["succeeded"] + output["failed"] + output["not_started"] == ITEMS
    # Over 1,000 items, the output lists the failed ones, by name.
    assert sorted(i["item"] for i in output["items"]) == ["web-0010", "web-0020", "web-0030"]

    for n in (10, 20, 30):
        (tmp_path / f"broken-web-{n:04d}").unlink()
    again = apply("redrive", first["run_id"])
    assert again["status"] == "succeeded", again
    redone = again["steps"]["patch"]["output"]
    assert (redone["succeeded"], redone["failed"]) == (ITEMS - output["succeeded"], 0)

    async def succeeded() -> list[str]:
        conn = await asyncpg.connect(run_store)
        try:
            rows = await conn.fetch(
                "SELECT e.item FROM step_events e JOIN runs r ON r.run_id = e.run_id "
                "WHERE r.workflow_id = ANY($1) AND e.item IS NOT NULL "
                "AND e.status = 'succeeded'",
                [first["run_id"], again["run_id"]],
            )
            return [r["item"] for r in rows]
        finally:
            await conn.close()

    done = asyncio.run(succeeded())
    assert len(done) == ITEMS and len(set(done)) == ITEMS

    async def started_with() -> tuple[Any, str]:
        client = await Client.connect(env["QLRF_TEMPORAL_ADDRESS"])
        history = await client.get_workflow_handle(again["run_id"]).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        [request] = await client.data_converter.decode(started.input.payloads, [RunInput])
        return request, started.input.SerializeToString().decode("utf-8", "replace")

    # The redrive's input names no item, and says only which run it continues: the
    # worker read what was done from the store.
    request, raw = asyncio.run(started_with())
    assert request.redrive == {"of": first["run_id"], "from": None, "reapprove": False}
    assert "web-0" not in raw


def test_pause_resume_concurrency_and_skip_by_name(temporal_address, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    inventory = tmp_path / "fleet.txt"
    inventory.write_text("".join(f"h{i:02d}\n" for i in range(1, 9)))
    path = write_runbook(
        tmp_path,
        """\
apiVersion: qlrf/v1
kind: Campaign
name: fleet
inputs:
  inventory: {type: string}
  dir: {type: string}
steps:
  - id: patch
    type: shell
    foreach: {from_file: "{{ inputs.inventory }}"}
    concurrency: 2
    with:
      script: |
        touch "{{ inputs.dir }}/run.{{ item }}"
        while [ ! -e "{{ inputs.dir }}/release" ]; do sleep 0.02; done
        rm "{{ inputs.dir }}/run.{{ item }}"
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
            seen["flood"] = await send(action="skip", step="patch", items=["x"] * 1001)
            assert (await send(action="concurrency", step="patch", concurrency=4))[0]
            await eventually_async(lambda: count(4), "4 items run after the concurrency change")
            assert (await send(action="pause"))[0]
            assert (await send(action="skip", step="patch", items=["h08", "no-such-host"]))[0]
            (marks / "release").touch()
            assert (await send(action="resume"))[0]

        seen["outcome"] = await run_runbook(
            temporal_address,
            path,
            [f"inventory={inventory}", f"dir={marks}"],
            client=client,
            while_running=control,
        )
        return seen

    seen = asyncio.run(scenario())
    assert seen["flood"][0] is False and "at most 1000" in seen["flood"][1]
    outcome = seen["outcome"]
    assert outcome.state["status"] == "succeeded", outcome.state["error"]
    output = outcome.step("patch")["output"]
    assert (output["succeeded"], output["skipped"]) == (7, 1)
    # A small fan-out from a file lists every item, as one from a list does.
    assert [(i["item"], i["status"]) for i in output["items"]][-2:] == [
        ("h07", "succeeded"),
        ("h08", "skipped"),
    ]
    assert [c["action"] for c in outcome.state["controls"]] == [
        "concurrency",
        "pause",
        "skip",
        "resume",
    ]


def test_a_bad_inventory_fails_the_step_with_what_to_fix(run, tmp_path, monkeypatch):
    runbook = """\
apiVersion: qlrf/v1
kind: Campaign
name: bad-inventory
inputs:
  inventory: {type: string}
steps:
  - id: patch
    type: shell
    foreach: {from_file: "{{ inputs.inventory }}", format: json}
    with: {command: ["true"]}
"""
    missing = run(runbook, [f"inventory={tmp_path / 'nope.json'}"])
    assert missing.step("patch")["error"]["type"] == "InventoryNotFound"
    assert "nope.json" in missing.step("patch")["error"]["message"]

    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "a"}\n{"name": b}\n')
    invalid = run(runbook, [f"inventory={bad}"])
    error = invalid.step("patch")["error"]
    assert error["type"] == "InventoryInvalid" and "line 2 column 10" in error["message"]

    many = tmp_path / "many.json"
    many.write_text("".join(f'"h{i}"\n' for i in range(20)))
    monkeypatch.setenv("QLRF_MAX_INVENTORY_ITEMS", "10")  # the worker runs in this process
    too_large = run(runbook, [f"inventory={many}"])
    error = too_large.step("patch")["error"]
    assert error["type"] == "InventoryTooLarge" and "QLRF_MAX_INVENTORY_ITEMS" in error["message"]
    # Nothing ran: the refusal comes before the first wave.
    assert "items" not in (too_large.step("patch").get("output") or {})


def test_an_inventory_path_outside_the_worker_s_directories_reads_nothing(
    temporal_address, tmp_path
):
    """The attack of the adversarial review, through the plain Temporal API: an input
    pointing `from_file` at /etc/shadow, or at the worker's own secrets file, fails the
    step with InventoryNotAllowed; nothing of either file reaches history."""
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    secrets = tmp_path / "worker.secrets"
    secrets.write_text("TOKEN=hunter2-from-the-secrets-file\n")
    path = write_runbook(tmp_path, WAVES.format(name="escape", format="lines"))
    plan = compile_file(path, ["inventory=x", "dir=x"]).plan.to_dict()

    async def go(target: str) -> tuple[dict[str, Any], str]:
        client = await Client.connect(temporal_address)
        queue = f"escape-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue=queue):
            handle = await client.start_workflow(
                "qlrf.Runbook",
                RunInput(plan, {"inventory": target, "dir": str(tmp_path)}, "mallory"),
                id=queue,
                task_queue=queue,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.result(), 60)
            state = await handle.query("state")
            history = (await handle.fetch_history()).to_json()
        return state, history

    import os

    os.environ["QLRF_SECRETS_FILE"] = str(secrets)
    try:
        for target in ("/etc/shadow", str(secrets)):
            state, history = asyncio.run(go(target))
            error = state["steps"]["patch"]["error"]
            assert error["type"] == "InventoryNotAllowed", error
            assert "root:" not in history and "hunter2" not in history
    finally:
        del os.environ["QLRF_SECRETS_FILE"]
