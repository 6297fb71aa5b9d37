"""Every walkthrough of the README and docs/, run as written, as a newcomer does.

A fenced block marked `sh` is a walkthrough: its lines run in one bash, from the
repository's root, on the embedded defaults (no QLRF_TEMPORAL_ADDRESS, no
QLRF_DATABASE_URL) with a home and state folder of its own. Three conventions,
which the README states, make a page readable as a person follows it:
- `RUN` is the run id that the last `apply` printed;
- a line whose comment says "(another terminal)" runs while the line before it
  still runs (that line is then waited for);
- `approve`, `reject` and `modify` are sent again until the gate asks for them, as a
  person waits until they are asked (a decision refused for good fails after a
  minute);
- a line whose comment says "exits N" must exit N; every other line must exit 0.
A block marked `shell` is a reference (a cluster, real hosts, made-up ids): it is
not run here, but each of its `qlrf-run` commands must parse against the CLI.
The walkthroughs share one embedded server, stopped at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from runner.cli.app import app
from tests.helpers.cli import ROOT

pytestmark = pytest.mark.timeout(900)

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^[ \t]*```([a-z]*)[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
COMMENT = re.compile(r"\s{2,}#\s?(.*)$")
DECISIONS = re.compile(r"qlrf-run (approve|reject|modify) ")
# What the suite itself is: running it from inside it would never end.
NOT_HERE = {"scripts/test"}


@dataclass
class Block:
    page: Path
    line: int
    info: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(info: str) -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == info:
                line = text.count("\n", 0, match.start()) + 1
                found.append(Block(page, line, info, match.group(2)))
    return found


def commands(text: str) -> Iterator[tuple[str, str]]:
    """(command, comment) per line, continuation lines joined, comment lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for raw in joined.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        found = COMMENT.search(raw)
        command = raw[: found.start()] if found else raw
        yield command.strip(), (found.group(1) if found else "")


def script(block: Block, logs: Path) -> str:
    """The walkthrough as one bash script that checks every line's exit."""
    lines = [
        "set -uo pipefail",
        'RUN=""',
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT",
        # The id the last apply printed: `started run X` or `attached to the open run X`.
        "took() { local id; id=$(grep -aoE '(started run|attached to the open run) [^ ]+' "
        '"$1" | tail -1 | awk \'{print $NF}\'); [ -n "$id" ] && RUN=$id; }',
        'fail() { echo "walkthrough line: $1 exited $2, not $3" >&2; exit 1; }',
    ]
    steps = [(cmd, note) for cmd, note in commands(block.text) if cmd not in NOT_HERE]
    i = 0
    while i < len(steps):
        command, note = steps[i]
        later = []
        for other in steps[i + 1 :]:
            if "(another terminal)" not in other[1]:
                break
            later.append(other)
        log = logs / f"{block.line}-{i}.log"
        if later:
            lines += [
                f"{{ {_with_run(command)}; }} > {log} 2>&1 < /dev/null & pid=$!",
                f"for _ in $(seq 600); do took {log} && break; sleep 0.1; done",
            ]
            for j, (decision, said) in enumerate(later):
                lines += _line(decision, said, logs / f"{block.line}-{i}-{j}.log")
            lines += [
                f"wait $pid; code=$?; cat {log}; took {log}",
                f"[ $code -eq {_expected(note)} ] || fail {shlex.quote(command)} $code "
                f"{_expected(note)}",
            ]
        else:
            lines += _line(command, note, log)
        i += 1 + len(later)
    return "\n".join(lines) + "\n"


def _line(command: str, note: str, log: Path) -> list[str]:
    run = _with_run(command)
    if command.endswith("&"):
        # No group here: the job is the command itself, so `kill %1` stops it.
        return [f"{run.rstrip('&').rstrip()} > {log} 2>&1 < /dev/null &"]
    quoted = shlex.quote(command)
    if DECISIONS.search(command):
        return [
            f"code=1; for _ in $(seq 300); do if {{ {run}; }} > {log} 2>&1 < /dev/null;"
            f" then code=0; break; fi; sleep 0.2; done; cat {log}",
            f"[ $code -eq 0 ] || fail {quoted} $code 0",
        ]
    return [
        f"{{ {run}; }} > {log} 2>&1 < /dev/null; code=$?; cat {log}; took {log}",
        f"[ $code -eq {_expected(note)} ] || fail {quoted} $code {_expected(note)}",
    ]


def _with_run(command: str) -> str:
    # Each line runs in a { ...; } group of the script's own shell: its variables stay,
    # and a redirection of its own (`> file`) is not overridden by the log's.
    return re.sub(r"\bRUN\b", "${RUN}", command)


def _expected(note: str) -> int:
    found = re.search(r"\bexits (\d+)", note)
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh home and state folder, the embedded defaults, this machine's caches."""
    base = tmp_path_factory.mktemp("newcomer")
    (base / "home").mkdir()
    real_home = Path.home()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLRF_")}
    env.update(
        HOME=str(base / "home"),
        XDG_STATE_HOME=str(base / "state"),
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(real_home / ".cache/pip")),
        NPM_CONFIG_CACHE=os.environ.get("NPM_CONFIG_CACHE", str(real_home / ".npm")),
        NO_COLOR="1",
    )
    yield env
    subprocess.run(["scripts/testhosts", "stop"], cwd=ROOT, env=env, capture_output=True)
    subprocess.run([".venv/bin/qlrf-run", "dev", "--stop"], cwd=ROOT, env=env, capture_output=True)


@pytest.mark.parametrize("block", blocks("sh"), ids=lambda b: b.name)
def test_the_walkthrough_runs_as_written(
    block: Block, newcomer: dict[str, str], tmp_path: Path
) -> None:
    bash = script(block, tmp_path)
    ran = subprocess.run(
        ["bash", "-c", bash], cwd=ROOT, env=newcomer, capture_output=True, text=True
    )
    assert ran.returncode == 0, f"{block.name}\n{ran.stdout}\n{ran.stderr}"
    assert "Traceback" not in ran.stdout + ran.stderr


REFERENCE_BLOCKS = [b for b in blocks("shell") if "qlrf-run " in b.text]


@pytest.mark.parametrize("block", REFERENCE_BLOCKS, ids=lambda b: b.name)
def test_the_reference_commands_parse(block: Block) -> None:
    cli = typer.main.get_command(app)
    for command, _ in commands(block.text):
        words = shlex.split(command)
        if not words or not words[0].endswith("qlrf-run"):
            continue
        group: Any = cli
        args = words[1:]
        # Typer carries its own click: a group is what has subcommands.
        while args and args[0] in getattr(group, "commands", {}):
            group, args = group.commands[args[0]], args[1:]
        assert not hasattr(group, "commands"), f"{block.name}: {command}: no such command"
        try:
            group.make_context(group.name or "", list(args))
        except Exception as exc:  # click's UsageError: an unknown option, a missing argument
            said = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            pytest.fail(f"{block.name}: {command}: {said}")


def test_every_block_is_a_walkthrough_or_a_reference() -> None:
    """A shell block of another kind would silently go unchecked."""
    for page in PAGES:
        for match in FENCE.finditer(page.read_text()):
            assert match.group(1) not in ("bash", "console", "zsh"), (
                f"{page.relative_to(ROOT)}: a `{match.group(1)}` block: mark it `sh` "
                "(a walkthrough, run by this test) or `shell` (a reference)"
            )
    assert blocks("sh"), "no walkthrough found"
