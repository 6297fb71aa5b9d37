"""Record the golden history of a run in signed mode (tests/golden/test_replay.py).

    .venv/bin/python tests/golden/record_signed.py

On a fresh in-memory dev server, with keys made by ssh-keygen for the occasion: the
worker trusts alice and bob; alice starts a run (signed), a forged `decide` signal
is refused, bob approves the gate (a signed Update) and pauses and resumes the run
(signed controls). Saved as signed-approval.trust.history.json. Replaying it needs none
of the keys: the trust snapshot and the accepted Updates are in the history.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden.recording import record, save_history, servers  # noqa: E402

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Task
name: signed-approval
steps:
  - id: review
    type: approval
    with:
      message: "go?"
      approvers: [bob@example.com]
      allow_self_approval: false
  - id: act
    type: shell
    with: {command: [echo, done]}
"""


def keygen(folder: Path, name: str) -> Path:
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


async def main() -> None:
    from runner.client import runs
    from runner.pipeline import compile_file
    from runner.worker import build_worker
    from tests.helpers import updates
    from tests.helpers.gates import wait_for_gate

    tmp = Path(tempfile.mkdtemp())
    alice, bob = keygen(tmp, "alice"), keygen(tmp, "bob")
    trust = tmp / "allowed_signers"
    lines = []
    for who, key in (("alice", alice), ("bob", bob)):
        kind, blob = Path(f"{key}.pub").read_text().split()[:2]
        lines.append(f'{who}@example.com namespaces="qlrf" {kind} {blob}\n')
    trust.write_text("".join(lines))
    os.environ["QLRF_ALLOWED_SIGNERS"] = str(trust)
    os.environ.setdefault("QLRF_INTERNAL_KEY", "golden-internal-key-" + "k" * 32)
    os.environ["QLRF_SIGNING_KEY"] = str(alice)
    async with servers() as up:
        client = up.client
        path = tmp / "signed-approval.yaml"
        path.write_text(RUNBOOK)
        compiled = compile_file(path, [], None)
        async with build_worker(client, task_queue="golden"):
            handle, _ = await runs.start(
                client,
                compiled.plan,
                compiled.inputs,
                "recorder",
                workflow_id="signed-approval",
                task_queue="golden",
                record=False,
            )
            await wait_for_gate(handle)
            await handle.signal("decide", {"gate": "review", "decision": "approve", "by": "bob"})
            os.environ["QLRF_SIGNING_KEY"] = str(bob)
            for action in ("pause", "resume"):
                ok, said = await updates.update(
                    client, "signed-approval", "control", {"action": action}, signed=True
                )
                assert ok, said
            ok, said = await updates.update(
                client,
                "signed-approval",
                "decide",
                {"gate": "review", "decision": "approve"},
                signed=True,
            )
            assert ok, said
            await handle.result()
        await save_history("signed-approval.trust", handle)


if __name__ == "__main__":
    record(main)
