"""Benchmark: what a signature adds to an approval, end to end.

One dev server and one worker (in this process, on a queue of its own). Each round
starts a run that waits at a gate, then times the installed `qlrf-run approve RUN
review` as an operator runs it, from its start to its exit: once in claimed mode
(`QLRF_USER=bob`), once in signed mode (the worker trusts a file; the CLI signs with
bob's key through ssh-keygen and the run verifies the signature), alternated.
Reported: the median of each over the rounds, and their difference. Goal: the
signature adds at most 100 ms.

Run: .venv/bin/python bench/trust.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
EXE = HERE.parent / ".venv" / "bin" / "qlrf-run"

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Task
name: bench-approve
steps:
  - id: review
    type: approval
    with:
      message: "go?"
      approvers: [bob, bob@example.com]
  - id: act
    type: shell
    with: {command: ["true"]}
"""


def keygen(folder: Path, name: str) -> Path:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


async def main(rounds: int) -> None:
    from temporalio.client import Client

    from runner.client import runs
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        alice, bob = keygen(folder, "alice"), keygen(folder, "bob")
        trust = folder / "allowed_signers"
        lines = []
        for who, key in (("alice", alice), ("bob", bob)):
            kind, blob = Path(f"{key}.pub").read_text().split()[:2]
            lines.append(f'{who}@example.com namespaces="qlrf" {kind} {blob}\n')
        trust.write_text("".join(lines))
        path = folder / "approve.yaml"
        path.write_text(RUNBOOK)
        compiled = compile_file(path, [], None)
        server, port, _ = launch(folder / "bench.db")
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        base = {
            **os.environ,
            "QLRF_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "QLRF_TASK_QUEUE": queue,
            "QLRF_STORE": "off",
        }
        base.pop("QLRF_ALLOWED_SIGNERS", None)
        base.pop("QLRF_SIGNING_KEY", None)
        envs = {
            "claimed": {**base, "QLRF_USER": "bob"},
            "signed": {**base, "QLRF_SIGNING_KEY": str(bob)},
        }
        timings: dict[str, list[float]] = {"claimed": [], "signed": []}
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            async with build_worker(client, task_queue=queue):
                for n in range(rounds + 1):  # the first round warms both paths up
                    for mode in ("claimed", "signed"):
                        if mode == "signed":  # the worker reads its trust file per run
                            os.environ["QLRF_ALLOWED_SIGNERS"] = str(trust)
                            os.environ.setdefault("QLRF_INTERNAL_KEY", "bench-key-" + "k" * 32)
                            os.environ["QLRF_SIGNING_KEY"] = str(alice)
                        else:
                            os.environ.pop("QLRF_ALLOWED_SIGNERS", None)
                            os.environ.pop("QLRF_SIGNING_KEY", None)
                        wid = f"{mode}-{uuid.uuid4().hex[:8]}"
                        handle, _ = await runs.start(
                            client,
                            compiled.plan,
                            {},
                            "alice",
                            workflow_id=wid,
                            task_queue=queue,
                            record=False,
                        )
                        await wait_for_gate(handle)
                        began = time.perf_counter()
                        done = await asyncio.to_thread(
                            subprocess.run,
                            [str(EXE), "approve", wid, "review"],
                            env=envs[mode],
                            capture_output=True,
                            text=True,
                        )
                        took = time.perf_counter() - began
                        if done.returncode != 0:
                            raise SystemExit(f"{mode} approve failed: {done.stderr}")
                        await handle.result()
                        if n > 0:
                            timings[mode].append(took)
        finally:
            terminate(server)
    med = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    print(f"qlrf-run approve, end to end, {rounds} alternated rounds (median, ms):")
    print(f"  claimed mode: {med['claimed']:7.0f}")
    print(f"  signed mode : {med['signed']:7.0f}")
    added = med["signed"] - med["claimed"]
    verdict = "met" if added <= 100 else "NOT met"
    print(f"  added by the signature: {added:.0f} ms (goal <= 100 ms: {verdict})")


async def wait_for_gate(handle: object) -> None:
    from tests.helpers.gates import wait_for_gate as wait

    await wait(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
