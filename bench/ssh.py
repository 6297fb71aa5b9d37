"""Benchmark: a fan-out of the real `ssh` step against the real `shell` step.

One dev server, one worker, 10 OpenSSH test hosts on 127.0.0.1 (tests/fixtures/
testhosts.py). The same campaign of N items, each running `true`, 50 at once:
- ssh: each item on test host (i mod 10), over the worker's kept connections;
- shell: each item on the worker itself.
- by hand: a bash loop of `ssh host true` over the same items, one after another,
  with OpenSSH's ControlMaster sharing one connection per host (the fastest a
  careful operator gets from a shell loop).
Alternated in one run. The figures: items per second of each, the ratios, and
the logins the ssh fan-out made (connection reuse: one per host, not per item).

Run: .venv/bin/python bench/ssh.py [--items 500] [--hosts 10] [--rounds 2]
(the targets figure: --items 200 --hosts 4)
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
BY_HAND = """
while read -r port user; do
  ssh -n -o ControlMaster=auto -o ControlPath="$CONTROL/%C" -o ControlPersist=120 \\
      -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN" \\
      -i "$KEY" -p "$port" "$user@127.0.0.1" true || exit 1
done < "$ITEMS"
"""
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


def by_hand(tmp: Path, inventory: list[dict]) -> float:
    """Items per second of the ControlMaster loop (its masters closed afterwards)."""
    import subprocess

    control = tmp / f"control-{uuid.uuid4().hex[:6]}"
    control.mkdir()
    listing = tmp / "by-hand.txt"
    listing.write_text("".join(f"{h['port']} {h['user']}\n" for h in inventory))
    env = {
        **os.environ,
        "CONTROL": str(control),
        "KNOWN": str(tmp / "fleet" / "known_hosts"),
        "KEY": str(tmp / "fleet" / "client_key"),
        "ITEMS": str(listing),
    }
    began = time.perf_counter()
    subprocess.run(["bash", "-c", BY_HAND], env=env, check=True, capture_output=True)
    rate = len(inventory) / (time.perf_counter() - began)
    for socket in control.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"], capture_output=True
        )
    return rate


async def main(items: int, rounds: int, hosts: int = HOSTS) -> None:
    from temporalio.client import Client

    from runner.client.runs import start
    from runner.local.temporal import launch, terminate
    from runner.pipeline import compile_file
    from runner.worker import build_worker
    from tests.fixtures import testhosts

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        fleet = testhosts.start(tmp / "fleet", hosts)
        os.environ["QLRF_SECRET_TESTHOSTS_SSH_KEY"] = (tmp / "fleet" / "client_key").read_text()
        inventory = [fleet[i % hosts].__dict__ | {"name": f"item-{i}"} for i in range(items)]
        os.chmod(tmp / "fleet" / "client_key", 0o600)
        (tmp / "items.json").write_text(json.dumps(inventory))
        for kind, with_ in (("ssh", SSH_WITH), ("shell", SHELL_WITH)):
            (tmp / f"{kind}.yaml").write_text(RUNBOOK.format(kind=kind, with_=with_))
        proc, port, _ = launch(None)
        rates: dict[str, list[float]] = {"ssh": [], "shell": [], "by hand": []}
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
                    rates["by hand"].append(await asyncio.to_thread(by_hand, tmp, inventory))
        finally:
            terminate(proc)
            logins = sum(
                Path(h.home, "sshd.log").read_text().count("Accepted publickey") for h in fleet
            )
            testhosts.stop(tmp / "fleet")
    ssh, shell = statistics.median(rates["ssh"]), statistics.median(rates["shell"])
    print(f"ssh:   {ssh:.0f} items/s (median of {rounds}), {items * rounds} items")
    print(f"shell: {shell:.0f} items/s (median of {rounds})")
    hand = statistics.median(rates["by hand"])
    print(f"by hand (bash loop, ControlMaster): {hand:.0f} items/s (median of {rounds})")
    print(f"ssh / shell: {ssh / shell:.2f}")
    verdict = "met" if ssh / hand >= 1.0 else "NOT met"
    print(f"ssh / by hand: {ssh / hand:.2f} (goal >= 1.0: {verdict})")
    print(
        f"sshd logins in all: {logins} for {items * rounds} ssh items and "
        f"{items * rounds} by hand, on {hosts} hosts (one per host and round by hand; the "
        "ssh step keeps its connections across rounds)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=HOSTS)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.rounds, args.hosts))
    os._exit(0)  # the SDK's runtime threads can abort a normal exit (sdk-python#300)
