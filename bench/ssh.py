"""Benchmark: a fan-out of the real `ssh` step against the real `shell` step.

One dev server, one worker, 10 OpenSSH test hosts on 127.0.0.1 (runner/local/
testhosts.py). The same campaign of N items, each running `true`, 50 at once:
- ssh: each item on test host (i mod 10), over the worker's kept connections;
- shell: each item on the worker itself.
Alternated in one run. The figures: items per second of each, their ratio, and
the logins the ssh fan-out made (connection reuse: one per host, not per item).

Run: .venv/bin/python bench/ssh.py [--items 500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

HOSTS = 10
RUNBOOK = """apiVersion: qlrf/v1
kind: Campaign
name: bench-{kind}
inputs:
  items: {{type: array}}
  known_hosts: {{type: string, default: ""}}
steps:
  - id: run
    type: {kind}
    foreach: "{{{{ inputs.items }}}}"
    as: item
    concurrency: 50
    retry: {{max_attempts: 1}}
    with:
{with_}
"""
SSH_WITH = """      host: "{{ item.address }}"
      port: "{{ item.port }}"
      user: "{{ item.user }}"
      key_secret: TESTHOSTS_SSH_KEY
      known_hosts: "{{ inputs.known_hosts }}"
      command: ["true"]"""
SHELL_WITH = """      command: ["true"]"""


async def main(items: int, rounds: int) -> None:
    from temporalio.client import Client

    from runner.client.runs import start
    from runner.local import testhosts
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.worker import build_worker

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        fleet = testhosts.start(tmp / "fleet", HOSTS)
        os.environ["QLRF_SECRET_TESTHOSTS_SSH_KEY"] = (tmp / "fleet" / "client_key").read_text()
        inventory = [fleet[i % HOSTS].__dict__ | {"name": f"item-{i}"} for i in range(items)]
        (tmp / "items.json").write_text(json.dumps(inventory))
        for kind, with_ in (("ssh", SSH_WITH), ("shell", SHELL_WITH)):
            (tmp / f"{kind}.yaml").write_text(RUNBOOK.format(kind=kind, with_=with_))
        proc, port, _ = launch(None)
        rates: dict[str, list[float]] = {"ssh": [], "shell": []}
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            async with build_worker(client, task_queue=queue, max_concurrent_activities=100):
                for _ in range(rounds):
                    for kind in ("ssh", "shell"):
                        compiled = compile_file(
                            tmp / f"{kind}.yaml",
                            [
                                f"items=@{tmp / 'items.json'}",
                                f"known_hosts={tmp / 'fleet' / 'known_hosts'}",
                            ],
                        )
                        began = time.perf_counter()
                        handle, _ = await start(
                            client,
                            compiled.plan,
                            compiled.inputs,
                            "bench",
                            workflow_id=f"bench-{kind}-{uuid.uuid4().hex[:6]}",
                            task_queue=queue,
                            record=False,
                        )
                        await handle.result()
                        rates[kind].append(items / (time.perf_counter() - began))
        finally:
            terminate(proc)
            logins = sum(
                Path(h.home, "sshd.log").read_text().count("Accepted publickey") for h in fleet
            )
            testhosts.stop(tmp / "fleet")
    ssh, shell = statistics.median(rates["ssh"]), statistics.median(rates["shell"])
    print(f"ssh:   {ssh:.0f} items/s (median of {rounds}), {items * rounds} items")
    print(f"shell: {shell:.0f} items/s (median of {rounds})")
    print(f"ssh / shell: {ssh / shell:.2f}")
    print(f"ssh logins: {logins} for {items * rounds} items on {HOSTS} hosts")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.rounds))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
