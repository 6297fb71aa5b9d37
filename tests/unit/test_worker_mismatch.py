"""A worker refuses a step of a run in the other identity mode, and only then."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from runner.contract.wire import trust_mark
from runner.steps.trust import refuse_mismatch


def _signers(tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    path = tmp_path / f"{name}.signers"
    path.write_text(f'{name}@example.com namespaces="qlrf" {kind} {blob}\n')
    return path


def test_the_same_mode_passes_even_with_another_signers_file(tmp_path, monkeypatch):
    monkeypatch.setenv("QLRF_ALLOWED_SIGNERS", str(_signers(tmp_path, "now")))
    refuse_mismatch(trust_mark("signed", "0" * 64))  # a file replaced since the run began
    refuse_mismatch(None)  # a run from before steps said their mode


def test_a_claimed_worker_refuses_a_signed_run_and_says_both(monkeypatch):
    monkeypatch.delenv("QLRF_ALLOWED_SIGNERS", raising=False)
    with pytest.raises(ApplicationError) as refused:
        refuse_mismatch(trust_mark("signed", "ab" * 32))
    assert refused.value.type == "WorkerMismatch"
    said = str(refused.value)
    assert "no signers file (claimed mode)" in said and "sha256 abababababab (signed mode)" in said
    assert "nothing ran on this worker" in said


def test_a_signed_worker_refuses_a_claimed_run(tmp_path, monkeypatch):
    monkeypatch.setenv("QLRF_ALLOWED_SIGNERS", str(_signers(tmp_path, "here")))
    with pytest.raises(ApplicationError, match="this run trusts no signers file"):
        refuse_mismatch(trust_mark("claimed", None))
