"""Tracing with QLRF_OTLP_ENDPOINT, against a real OTLP/HTTP receiver: one trace per run,
one span per step attempt naming the run, the step and the item; a collector that is
down is said once and costs the run nothing."""

from __future__ import annotations

import json
import signal
import uuid
from collections import Counter

import pytest

from runner.local.temporal import free_port
from tests.helpers.cli import qlrf
from tests.helpers.otlp import Receiver
from tests.helpers.worker_ops import spawn, until

RETRIED = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: first
    type: shell
    with: {{command: [echo, one]}}
  - id: flaky
    type: shell
    needs: [first]
    retry: {{max_attempts: 3, initial_interval: 1s}}
    with:
      script: |
        if [ -f "{marker}" ]; then echo second; else touch "{marker}"; exit 1; fi
  - id: fleet
    type: shell
    needs: [flaky]
    foreach: [web-1]
    as: host
    with: {{command: [echo, "{{{{ host }}}}"]}}
"""


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


def _env(temporal_address: str, run_store: str, endpoint: str) -> dict[str, str]:
    return {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": run_store,
        "QLRF_TASK_QUEUE": f"traces-{uuid.uuid4().hex[:8]}",
        "QLRF_OTLP_ENDPOINT": endpoint,
    }


def test_one_trace_per_run_and_one_span_per_attempt(
    temporal_address, run_store, receiver, tmp_path
):
    env = _env(temporal_address, run_store, receiver.url)
    name = f"traced-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "traced.yaml"
    path.write_text(RETRIED.format(name=name, marker=tmp_path / "marker"))
    worker = spawn(["worker"], env, tmp_path / "worker.log")
    try:
        done = qlrf("apply", str(path), "--no-worker", "--format", "json", env=env, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        rid = json.loads(done.stdout)["run_id"]

        def step_spans():
            spans = [
                s
                for s in receiver.snapshot()
                if s.attributes.get("qlrf.run_id") == rid and "qlrf.step" in s.attributes
            ]
            steps = Counter(s.attributes["qlrf.step"] for s in spans)
            return spans if steps == Counter({"first": 1, "flaky": 2, "fleet": 1}) else None

        spans = until(step_spans, lambda: f"step spans of {rid}: {receiver.snapshot()}")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    assert {s.name for s in spans} == {"RunActivity:shell"}
    flaky = sorted(
        s.attributes["qlrf.attempt"] for s in spans if s.attributes["qlrf.step"] == "flaky"
    )
    assert flaky == [1, 2]
    [item] = [s for s in spans if s.attributes["qlrf.step"] == "fleet"]
    assert item.attributes["qlrf.item"] == "web-1"
    # One trace: `apply` opened it when it started the run, and every span of the
    # run, in the worker's process, the batch child's included, hangs from it.
    traces = {s.trace_id for s in spans}
    assert len(traces) == 1
    [trace] = traces
    names = {s.name for s in receiver.snapshot() if s.trace_id == trace}
    assert "StartWorkflow:qlrf.Runbook" in names
    assert "RunWorkflow:qlrf.Runbook" in names
    assert "RunWorkflow:qlrf.Batch" in names
    # the CLI's queries while it followed the run are not traces of their own
    assert not [s for s in receiver.snapshot() if s.name.startswith("QueryWorkflow")]


def test_a_collector_that_is_down_is_said_once(temporal_address, run_store, tmp_path):
    # with credentials in the URL, which must stay out of the log
    env = _env(temporal_address, run_store, f"http://qlrf:hunter2secret@127.0.0.1:{free_port()}")
    path = tmp_path / "quiet.yaml"
    path.write_text(
        "apiVersion: qlrf/v1\nkind: Runbook\nname: untraced\nsteps:\n"
        "  - id: one\n    type: shell\n    with: {command: [echo, one]}\n"
        "  - id: wait\n    type: shell\n    needs: [one]\n    with: {command: [sleep, '7']}\n"
        "  - id: two\n    type: shell\n    needs: [wait]\n    with: {command: [echo, two]}\n"
    )
    log = tmp_path / "worker.log"
    worker = spawn(["worker"], env, log)
    try:
        done = qlrf("apply", str(path), "--no-worker", "--format", "json", env=env, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["status"] == "succeeded"
        # spans of both ends of the sleep were due in separate exports by now
        until(lambda: "cannot reach" in log.read_text(), "the worker says traces cannot go out")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    said = log.read_text()
    assert said.count("traces cannot reach QLRF_OTLP_ENDPOINT") == 1, said
    assert "Traceback" not in said
    assert "hunter2secret" not in said and "qlrf:***@" in said


def test_a_malformed_endpoint_is_refused(temporal_address):
    refused = qlrf(
        "worker",
        env={"QLRF_TEMPORAL_ADDRESS": temporal_address, "QLRF_OTLP_ENDPOINT": "collector:4318"},
    )
    assert refused.returncode == 1
    assert "QLRF_OTLP_ENDPOINT" in refused.stderr and "http://" in refused.stderr
