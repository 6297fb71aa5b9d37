"""What the Temporal UI shows of a run, read through the plain Temporal API: the
current details, the static summary, plumbing labelled as such, routine failures
without a stack trace, and an input that carries the runbook's digest, not its text."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from runner.client import runs
from runner.client.connect import Target, connect
from runner.client.workers import METADATA_QUERY
from runner.pipeline import compile_file
from runner.worker import build_worker
from tests.helpers.gates import wait_for_gate

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
steps:
  - id: review
    type: approval
    with: {{message: "restart the payments API?", approvers: [bob, carol]}}
  - id: restart
    type: shell
    retry: {{max_attempts: 1}}
    with: {{script: "echo 'restart refused by the API' >&2; exit 3"}}
"""


def _failures(event_failure) -> list:
    """A failure and its causes."""
    chain = []
    current = event_failure
    while current is not None and current.ByteSize():
        chain.append(current)
        current = current.cause if current.HasField("cause") else None
    return chain


async def _current_details(handle) -> str:
    """What the Temporal UI shows as the run's current details (a built-in query)."""
    metadata = await handle.query(METADATA_QUERY)
    return str(metadata.current_details)


async def _scenario(address: str, tmp_path: Path) -> None:
    client: Client = await connect(Target(address, "default", None, False))
    name = f"ui-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "task.yaml"
    path.write_text(RUNBOOK.format(name=name))
    compiled = compile_file(path)
    queue = f"ui-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue=queue):
        handle, _ = await runs.start(
            client,
            compiled.plan,
            compiled.inputs,
            "alice",
            workflow_id=name,
            task_queue=queue,
            definition_sha256=compiled.source_sha256,
            definition_file=str(path),
        )
        await wait_for_gate(handle)
        # The current details name the gate, who may decide, and the command.
        details = await _current_details(handle)
        assert "review" in details and "bob, carol" in details
        assert f"qlrf-run approve {name} review" in details
        description = await handle.describe()
        assert await description.static_summary() == f"Task {name}"

        gate = await handle.execute_update(
            "decide", {"gate": "review", "decision": "approve", "by": "bob", "comment": ""}
        )
        assert gate["status"] == "approved"
        with contextlib.suppress(Exception):  # the run fails: its restart step exits 3
            await asyncio.wait_for(handle.result(), 120)
        details = await _current_details(handle)
        assert "failed" in details and "CommandFailed" in details

    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [run_input] = await client.data_converter.decode(started.input.payloads)
    run_input = run_input if isinstance(run_input, dict) else run_input.__dict__
    assert run_input["definition_text"] == ""  # the text is in the run store
    assert run_input["definition_sha256"] == compiled.source_sha256
    assert not json.dumps(run_input["plan"]).startswith("apiVersion")

    summaries = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            payload = event.user_metadata.summary
            [summary] = await client.data_converter.decode([payload])
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            summaries.append((kind, summary))
    assert ("gate_notify", "qlrf plumbing: notify the approvers of gate review") in summaries
    assert all(s.startswith("qlrf plumbing") for k, s in summaries if k != "shell"), summaries

    failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    ]
    activity_failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert failed and activity_failed
    chains = [_failures(failed[0].workflow_execution_failed_event_attributes.failure)]
    chains += [_failures(e.activity_task_failed_event_attributes.failure) for e in activity_failed]
    for chain in chains:
        for failure in chain:
            assert failure.stack_trace == "", failure.message


def test_the_temporal_ui_shows_what_the_run_does(temporal_address, tmp_path):
    asyncio.run(_scenario(temporal_address, tmp_path))
