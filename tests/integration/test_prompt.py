"""`apply`'s gate prompt in a real pseudo-terminal, as a person meets it.

The prompt is offered only to someone the gate lets decide, answers go through, and
when the gate is decided from another terminal the prompt is withdrawn and `apply`
exits as the run ends (it used to wait for Enter in a thread that could not be
cancelled).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pexpect
import pytest

from tests.helpers.cli import EXE, ROOT, qlrf

pytestmark = pytest.mark.timeout(180)

RUNBOOK = """\
apiVersion: qlrf/v1
kind: Task
name: prompt-{tag}
steps:
  - id: review
    type: approval
    with:
      message: go ahead?
      approvers: [alice, bob]
      allow_self_approval: {self_ok}
  - id: after
    type: shell
    needs: [review]
    with: {{command: [echo, released]}}
"""

# Long enough for a loaded machine; a prompt that blocks exit never gets there.
WAIT = 60


def _write(tmp_path: Path, tag: str, self_ok: bool = False) -> Path:
    path = tmp_path / f"{tag}.yaml"
    path.write_text(textwrap.dedent(RUNBOOK.format(tag=tag, self_ok=str(self_ok).lower())))
    return path


def _apply(path: Path, env: dict[str, str], user: str) -> tuple[pexpect.spawn, str]:
    child = pexpect.spawn(
        EXE,
        ["--no-color", "apply", str(path)],
        env={**_base_env(), **env, "QLRF_USER": user},
        cwd=str(ROOT),
        encoding="utf-8",
        dimensions=(50, 160),
        timeout=WAIT,
    )
    child.expect(r"started run (\S+)")
    return child, str(child.match.group(1))


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _exits(child: pexpect.spawn) -> tuple[str, int]:
    child.expect(pexpect.EOF)
    child.close()
    return _plain(str(child.before)), int(child.exitstatus or 0)


def _plain(text: str) -> str:
    """What a person reads: the terminal's control sequences left out."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_a_gate_decided_elsewhere_withdraws_the_prompt_and_apply_exits(
    tmp_path: Path, env: dict[str, str]
) -> None:
    child, run = _apply(_write(tmp_path, "elsewhere"), env, "alice")
    # alice started the run and may not approve it herself: she is offered the rest.
    child.expect(r"decide gate review as alice\? \[r\]eject / \[Enter\] later:")
    approved = qlrf("approve", run, "review", "--as", "bob", env=env)
    assert approved.returncode == 0, approved.stderr
    child.expect("gate review was decided elsewhere")
    rest, code = _exits(child)
    assert code == 0, rest
    assert f"run {run} succeeded" in rest


def test_the_prompt_is_not_offered_to_someone_who_may_not_decide(
    tmp_path: Path, env: dict[str, str]
) -> None:
    child, run = _apply(_write(tmp_path, "outsider"), env, "carol")
    child.expect(r"gate review")  # the log says it waits, and for whom
    approved = qlrf("approve", run, "review", "--as", "bob", env=env)
    assert approved.returncode == 0, approved.stderr
    rest, code = _exits(child)
    assert code == 0, rest
    assert "decide gate" not in str(child.before) + rest
    assert f"run {run} succeeded" in rest


def test_an_answer_in_the_prompt_decides_the_gate(tmp_path: Path, env: dict[str, str]) -> None:
    child, run = _apply(_write(tmp_path, "answered", self_ok=True), env, "alice")
    child.expect(re.escape("[a]pprove / [r]eject / [Enter] later:"))
    child.sendline("r")
    child.expect(r"why\?")
    child.sendline("not tonight")
    child.expect("reject accepted")
    rest, code = _exits(child)
    assert code == 1, rest
    assert f"run {run} failed" in rest and "not tonight" in rest
