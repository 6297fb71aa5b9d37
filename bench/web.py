"""The approvals service against the CLI, in one run on the same servers.

A real OpenID provider, a `qlrf-run worker` in signed mode and `qlrf-run serve`. Each
round starts two runs at a gate and approves one through the API (a bearer JWT, the
service vouching) and one with the installed `qlrf-run approve` (alice's SSH key),
alternating which goes first. Then 50 runs at once are approved through the API, 50
requests in flight, and the service's resident memory is read idle and after. Then,
with 1,000 more runs waiting at a gate (claimed mode, their own task queue), the
**Waiting for you** page; and the run page and review page of a campaign of 10,000
items waiting at its gate; medians.

    .venv/bin/python bench/web.py [--rounds 10] [--concurrent 50] [--gates 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from runner.local.temporal import launch, terminate
from tests.helpers.cli import qlrf, worker_process
from tests.helpers.waiting import eventually
from tests.helpers.web import CLIENT_ID, CLIENT_SECRET, Served, keygen, provider, public, tokens

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
steps:
  - id: review
    type: approval
    with: {{message: "go?", approvers: [alice@example.com, bob@example.com]}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--gates", type=int, default=1000)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="qlrf-bench-web-"))
    proc, port, _ = launch(None)
    address = f"127.0.0.1:{port}"
    keys = {n: keygen(folder, n) for n in ("vouch", "alice", "bob")}
    trust = folder / "allowed_signers"
    trust.write_text(
        f'alice@example.com namespaces="qlrf" {public(keys["alice"])}\n'
        f'bob@example.com namespaces="qlrf" {public(keys["bob"])}\n'
        f'*@example.com namespaces="qlrf-vouch" {public(keys["vouch"])}\n'
    )
    env = {
        "QLRF_TEMPORAL_ADDRESS": address,
        "QLRF_TASK_QUEUE": f"bench-web-{uuid.uuid4().hex[:6]}",
        "QLRF_ALLOWED_SIGNERS": str(trust),
        "QLRF_INTERNAL_KEY": "bench-internal-key-" + "b" * 32,
    }
    worker = worker_process(env)
    try:
        with provider() as issuer:
            web_env = {k: v for k, v in env.items() if k != "QLRF_ALLOWED_SIGNERS"}
            web_env.update(
                QLRF_WEB_OIDC_ISSUER=issuer,
                QLRF_WEB_OIDC_CLIENT_ID=CLIENT_ID,
                QLRF_WEB_OIDC_CLIENT_SECRET=CLIENT_SECRET,
                QLRF_WEB_SESSION_KEY="b" * 40,
                QLRF_WEB_VOUCH_KEY=str(keys["vouch"]),
                QLRF_WEB_DECISIONS_PER_MINUTE="100000",
            )
            served = Served(web_env, folder / "serve.log")
            try:
                run_bench(args, folder, env, served, issuer)
            finally:
                served.stop()
    finally:
        worker.terminate()
        worker.wait(30)
        terminate(proc)


def start(folder: Path, env: dict[str, str]) -> str:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    path = folder / f"{name}.yaml"
    path.write_text(RUNBOOK.format(name=name))
    signed = {**env, "QLRF_SIGNING_KEY": str(folder / "alice")}
    done = qlrf("apply", str(path), "--detach", "--format", "json", env=signed)
    assert done.returncode == 0, done.stderr
    import json

    run = str(json.loads(done.stdout)["run_id"])
    eventually(
        lambda: '"waiting"' in qlrf("status", run, "--format", "json", env=env).stdout,
        f"{run} waiting",
        60,
    )
    return run


def run_bench(args, folder: Path, env: dict[str, str], served: Served, issuer: str) -> None:
    from observability import rss_mb

    token = tokens(issuer, "bob@example.com")["id_token"]
    headers = {"Authorization": f"Bearer {token}"}
    http = httpx.Client(timeout=60)
    idle = rss_mb(served.proc.pid)
    web_ms, cli_ms = [], []
    bob = {**env, "QLRF_SIGNING_KEY": str(folder / "bob")}
    for i in range(args.rounds):
        a, b = start(folder, env), start(folder, env)
        order = ["web", "cli"] if i % 2 == 0 else ["cli", "web"]
        for how in order:
            began = time.perf_counter()
            if how == "web":
                answer = http.post(
                    f"{served.url}/api/v1/runs/{a}/gates/review/decisions",
                    json={"decision": "approve"},
                    headers=headers,
                )
                assert answer.status_code == 200, answer.text
                web_ms.append((time.perf_counter() - began) * 1000)
            else:
                done = qlrf("approve", b, "review", env=bob)
                assert done.returncode == 0, done.stderr
                cli_ms.append((time.perf_counter() - began) * 1000)
    web, cli = statistics.median(web_ms), statistics.median(cli_ms)
    print(
        f"approve, median of {args.rounds}: web {web:.0f} ms, CLI {cli:.0f} ms, "
        f"web/CLI {web / cli:.2f}  (goals: <= 100 ms, <= 0.25)"
    )

    runs = [start(folder, env) for _ in range(args.concurrent)]

    async def burst() -> list[float]:
        async with httpx.AsyncClient(timeout=60, headers=headers) as client:

            async def one(run: str) -> float:
                began = time.perf_counter()
                answer = await client.post(
                    f"{served.url}/api/v1/runs/{run}/gates/review/decisions",
                    json={"decision": "approve"},
                )
                assert answer.status_code == 200, answer.text
                return (time.perf_counter() - began) * 1000

            return list(await asyncio.gather(*(one(r) for r in runs)))

    took = sorted(asyncio.run(burst()))
    p95 = took[math.ceil(len(took) * 0.95) - 1]  # nearest rank: the 48th of 50
    print(
        f"{args.concurrent} approvals of {args.concurrent} runs at once: all accepted, "
        f"median {statistics.median(took):.0f} ms, p95 {p95:.0f} ms (goal p95 <= 500 ms)"
    )
    print(
        f"serve resident memory: idle {idle:.0f} MB, after the load "
        f"{rss_mb(served.proc.pid):.0f} MB (goal <= 150 MB)"
    )
    asyncio.run(pages(args, folder, env, served, http, headers))
    print(f"serve resident memory after the pages: {rss_mb(served.proc.pid):.0f} MB")


CAMPAIGN = """\
apiVersion: qlrf/v1
kind: Campaign
name: big-{n}
inputs:
  hosts: {{type: array, items: {{type: string}}}}
steps:
  - id: review
    type: approval
    with: {{message: "patch {{{{ inputs.hosts | length }}}} hosts?", approvers: [bob@example.com]}}
  - id: patch
    needs: [review]
    type: shell
    foreach: "{{{{ inputs.hosts }}}}"
    as: host
    waves: [{{name: canary, size: 10}}, {{name: half, size: 50%}}, {{name: rest, size: 100%}}]
    with: {{command: [echo, "{{{{ host }}}}"]}}
"""


def timed(http: httpx.Client, url: str, headers: dict[str, str], calls: int = 10) -> float:
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        answer = http.get(url, headers=headers)
        assert answer.status_code == 200, answer.text[:300]
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


async def pages(args, folder: Path, env: dict[str, str], served: Served, http, headers) -> None:
    """The inbox with many gates waiting, and a 10,000-item campaign's pages: runs in
    claimed mode on a worker in this process, on a task queue of their own."""
    import json
    import os

    from temporalio.client import Client

    from runner.client import runs
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    os.environ["QLRF_STORE"] = "off"  # these runs only wait: nothing to record
    client = await Client.connect(env["QLRF_TEMPORAL_ADDRESS"])
    queue = f"bench-pages-{uuid.uuid4().hex[:6]}"
    gated = folder / "gated.yaml"
    gated.write_text(RUNBOOK.format(name="bench-inbox"))
    big = folder / "big.yaml"
    big.write_text(CAMPAIGN.format(n=uuid.uuid4().hex[:6]))
    hosts_file = folder / "hosts.json"
    hosts_file.write_text(json.dumps([f"host-{i:05d}" for i in range(args.items)]))
    compiled = compile_file(gated)
    campaign = compile_file(big, [f"hosts=@{hosts_file}"])
    async with build_worker(client, task_queue=queue):
        for first in range(0, args.gates, 100):
            await asyncio.gather(
                *(
                    runs.start(
                        client,
                        compiled.plan,
                        compiled.inputs,
                        "carol@example.com",
                        workflow_id=f"inbox-{uuid.uuid4().hex[:10]}",
                        task_queue=queue,
                    )
                    for _ in range(first, min(args.gates, first + 100))
                )
            )
        handle, _ = await runs.start(
            client,
            campaign.plan,
            campaign.inputs,
            "carol@example.com",
            workflow_id=f"big-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        deadline = time.monotonic() + 900
        waiting = 0
        while time.monotonic() < deadline:
            waiting = 0
            async for _ in client.list_workflows(
                "QlrfWaiting IS NOT NULL AND ExecutionStatus='Running'"
            ):
                waiting += 1
            if waiting >= args.gates + 1:
                break
            await asyncio.sleep(1)
        inbox = await asyncio.to_thread(timed, http, f"{served.url}/", headers)
        print(f"Waiting for you, {waiting} gates waiting: median {inbox:.0f} ms (goal <= 500 ms)")
        run_page = await asyncio.to_thread(timed, http, f"{served.url}/runs/{handle.id}", headers)
        review = await asyncio.to_thread(
            timed, http, f"{served.url}/runs/{handle.id}/gates/review", headers
        )
        print(
            f"a {args.items}-item campaign at its gate: run page {run_page:.0f} ms, "
            f"review page {review:.0f} ms, medians (goal <= 500 ms)"
        )


if __name__ == "__main__":
    main()
