"""Benchmark: the cost of the policy (QLRF_POLICY) in the run, in signed mode.

One dev server and one worker; the runbook of bench/interpreter_vs_handwritten.py's
first part (10 no-op activity steps) started signed, with its provenance, N at a time:
with a policy whose rules match it (start, approve, operate, require, windows) and a
proposals section, against with no policy, alternated in one run so that the machine's
noise hits both alike. Goal: >= 0.95.

Run: .venv/bin/python bench/interpreter_vs_handwritten.py --policy [--runs 200] [--rounds 2]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from interpreter_vs_handwritten import STEPS, _all, batch, noop_shell, runbook, signed_plumbing

POLICY = """\
rules:
  - match: {kind: Runbook, name: "bench-*"}
    start: [alice@example.com, "group:sre"]
    approve: ["group:sre"]
    operate: ["group:sre"]
    require: {committed: true}
    windows:
      allow: ["Mon-Sun 00:00-24:00 Europe/Berlin"]
  - match: {labels: {env: prod}}
    start: ["group:sre"]
proposals:
  principals: ["group:agents"]
  allow_types: [shell]
  max_items: 10
  forbid: ['rm\\s+-rf']
  gate: {approvers: ["group:sre"]}
"""
PROVENANCE = {
    "git": True,
    "path": "bench.yaml",
    "remote": "https://git.example.com/ops/runbooks.git",
    "commit": "0" * 40,
    "blob": "1" * 40,
    "file_blob": "1" * 40,
    "tracked": True,
    "clean": True,
    "branches": ["main"],
    "signature": {"verified": False, "detail": "the commit is not signed"},
}


async def policy_cost(runs: int, rounds: int) -> None:

    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from runner.client.signing import sign
    from runner.contract import WORKFLOW_TYPE, RunInput
    from runner.engine.interpreter import RunbookWorkflow
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.steps.trust import trust_snapshot
    from runner.trust.claims import start_claim
    from runner.worker import current_policy, workflow_runner

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "alice"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        kind, blob = Path(f"{key}.pub").read_text().split()[:2]
        trust = Path(tmp) / "allowed_signers"
        trust.write_text(f'alice@example.com namespaces="qlrf" {kind} {blob}\n')
        groups = Path(tmp) / "groups.yaml"
        groups.write_text("sre: [bob@example.com]\nagents: [agent@example.com]\n")
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        os.environ.update(
            QLRF_ALLOWED_SIGNERS=str(trust),
            QLRF_GROUPS_FILE=str(groups),
            QLRF_INTERNAL_KEY="bench-key-" + "k" * 32,
        )
        server, port, _ = launch(Path(tmp) / "bench.db")
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            path = Path(tmp) / "activity.yaml"
            path.write_text(runbook("activity"))
            compiled = compile_file(path).plan
            plan = compiled.to_dict()
            queue = f"bench-{uuid.uuid4()}"
            worker = Worker(
                client,
                task_queue=queue,
                workflows=[RunbookWorkflow],
                activities=[
                    activity.defn(name="shell")(noop_shell),
                    trust_snapshot(lambda: {"sre": ["bob@example.com"]}, policy=current_policy),
                    *signed_plumbing(),
                ],
                workflow_runner=workflow_runner(),
                max_concurrent_activities=100,
            )

            def starter(mode: str) -> Any:
                async def start_one(i: int) -> Any:
                    wid = f"{mode}-{uuid.uuid4()}"
                    request = RunInput(plan, {}, "bench", record=False)
                    request.provenance = PROVENANCE
                    claim = start_claim(wid, compiled.plan_hash, {}, None, PROVENANCE)
                    request.proof = await asyncio.to_thread(sign, claim, key=key)
                    return await client.start_workflow(
                        WORKFLOW_TYPE, request, id=wid, task_queue=queue
                    )

                return start_one

            def mode(name: str) -> None:  # the worker reads its policy per run
                if name == "policy":
                    os.environ["QLRF_POLICY"] = str(policy)
                else:
                    os.environ.pop("QLRF_POLICY", None)

            results: dict[str, list[float]] = {"none": [], "policy": []}
            async with worker:
                for name in ("none", "policy"):
                    mode(name)
                    await batch(client, queue, 10, starter(name))
                for _ in range(rounds):
                    for name in ("none", "policy"):
                        mode(name)
                        results[name].append(await batch(client, queue, runs, starter(name)))
        finally:
            terminate(server)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{runs} concurrent signed runs x {STEPS} steps, {rounds} alternated rounds; steps/s:")
    print(f"  no policy  : {med['none']:8.1f}   {_all(results['none'])}")
    print(f"  with policy: {med['policy']:8.1f}   {_all(results['policy'])}")
    ratio = med["policy"] / med["none"]
    verdict = "met" if ratio >= 0.95 else "NOT met"
    print(f"  ratio with/without: {ratio:.2f}  (goal >= 0.95: {verdict})")
