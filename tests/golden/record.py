"""Record the golden histories replayed by tests/golden/test_replay.py.

Run it after a deliberate change to the interpreter's commands, and say why in
the commit: .venv/bin/python tests/golden/record.py [EXAMPLE...]
Each example runs on a fresh in-memory dev server; its history is saved as JSON.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden.recording import record, save, save_history, servers  # noqa: E402

EXAMPLES = ["drill", "failover-rollback", "ai-task-approval", "patch-campaign"]
# The patch campaign over ssh on 20 test hosts (tests/fixtures/testhosts.py), none of
# them broken: every wave runs (the fleet after its pause), each batch a child run.
INPUTS = {"patch-campaign": ["hosts=@{fleet}/inventory.json", "known_hosts={fleet}/known_hosts"]}
BATCHES = {"patch-campaign": ["patch.canary.1", "patch.staged.1", "patch.fleet.1"]}
NEEDS_HOSTS = {"patch-campaign": 20}


async def _decide(handle) -> None:
    """The ai-task-approval gate: a refused vote, a modify, then an approval."""
    from tests.helpers.gates import decision, wait_for_gate

    await wait_for_gate(handle)
    await handle.signal("decide", decision("approve", "mallory"))  # refused, recorded
    await handle.execute_update("decide", decision("modify", "bob", set={"batch_size": 2}))
    await handle.execute_update("decide", decision("approve", "alice", comment="recorded"))


async def _approve_wave(handle) -> None:
    from tests.helpers.gates import decision, wait_for_gate

    await wait_for_gate(handle, "patch/staged")
    await handle.execute_update("decide", decision("approve", "alice", gate="patch/staged"))


DECISIONS = {"ai-task-approval": _decide, "patch-campaign": _approve_wave}


async def main() -> None:
    from tests.fixtures import testhosts
    from tests.helpers.runs import run_runbook

    async with servers() as up:
        for name in sys.argv[1:] or EXAMPLES:
            fleet = up.tmp / "fleet"
            if name in NEEDS_HOSTS:
                testhosts.start(fleet, NEEDS_HOSTS[name])
                os.environ["QLRF_SECRETS_FILE"] = str(fleet / "secrets")
            # The workflow id is the example's name, so the replay can name it too.
            try:
                outcome = await run_runbook(
                    up.address,
                    ROOT / "examples" / f"{name}.yaml",
                    [i.format(fleet=fleet) for i in INPUTS.get(name, [])],
                    workflow_id=name,
                    while_running=DECISIONS.get(name),
                )
            finally:
                testhosts.stop(fleet)
            save(name, outcome.history_json, outcome.state["status"])
            for batch in BATCHES.get(name, []):
                # Saved as NAME.batch-<step>-<wave>-<n>: test_replay names the child by it.
                handle = up.client.get_workflow_handle(f"{name}.{batch}")
                await save_history(f"{name}.batch-{batch.replace('.', '-')}", handle)


if __name__ == "__main__":
    record(main)
