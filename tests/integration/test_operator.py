"""The operator's experience at the command line, against real servers: clean exits,
a broken environment named at once, answers without a worker, one name for a run in
every JSON shape, `logs`, Ctrl-C, and colour only where it belongs."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.helpers import shapes
from tests.helpers.cli import EXE, ROOT, qlrf, worker_process
from tests.helpers.waiting import eventually
from tests.helpers.worker_ops import until as _until

GATED = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
steps:
  - id: prepare
    type: shell
    with: {{command: [echo, prepared]}}
  - id: review
    type: approval
    with: {{message: "go ahead?", approvers: [bob]}}
  - id: act
    type: shell
    with: {{script: "echo acted"}}
"""
SLOW = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: count
    type: shell
    with:
      script: |
        for i in 1 2 3 4 5 6 7 8; do echo "line $i"; echo "note $i" >&2; sleep 1; done
        printf "the end"
  - id: fleet
    type: shell
    foreach: [web-1, web-2]
    as: host
    with: {{command: [echo, "patched {{{{ host }}}}"]}}
"""
# How long an answer may take before the test calls it a hang (not a speed test:
# bench/cli_latency.py measures speed).
ANSWER_SECONDS = 20


def _write(tmp_path: Path, template: str) -> tuple[Path, str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(template.format(name=name))
    return path, name


def _detach(path: Path, env: dict[str, str]) -> str:
    started = qlrf("apply", str(path), "--detach", "--format", "json", env=env)
    assert started.returncode == 0, started.stderr
    found = json.loads(started.stdout)
    shapes.check(found, shapes.DETACHED)
    return str(found["run_id"])


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`qlrf-run ARGS` running on its own, its output read as it comes."""
    return subprocess.Popen(
        [EXE, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)


def _rows(command: str, rid: str, env: dict[str, str]) -> list[dict]:
    """The rows of `command --format json` (list, pending) about run `rid`."""
    found = json.loads(qlrf(command, "--format", "json", env=env).stdout)
    return [row for row in found if row["run_id"] == rid]


def _state(rid: str, env: dict[str, str]) -> dict:
    shown = qlrf("status", rid, "--format", "json", env=env, timeout=ANSWER_SECONDS)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_error_exits_are_clean_every_time(env):
    """Errors on a missing run exit 1 with one line, every time: never the SDK's exit
    crash (134, 139), never a traceback."""
    missing = f"no-such-run-{uuid.uuid4().hex[:6]}"
    calls = [
        ("status", missing),
        ("approve", missing, "review"),
        ("modify", missing, "review", "--set", "x=1"),
        ("pause", missing),
        ("logs", missing),
        ("watch", missing),
    ]
    codes = []
    for _ in range(5):
        for args in calls:
            result = qlrf(*args, env=env, timeout=ANSWER_SECONDS)
            codes.append(result.returncode)
            assert result.returncode == 1, (args, result.returncode, result.stderr)
            assert f"no run '{missing}'" in result.stderr
            assert "Traceback" not in result.stderr and "Fatal Python" not in result.stderr
    assert set(codes) == {1}


def test_a_broken_store_fails_apply_at_once_naming_the_variable(env, tmp_path):
    """A store that cannot be reached: apply stops before any run starts, names
    QLRF_DATABASE_URL and never shows its password."""
    path, name = _write(tmp_path, GATED)
    unreachable = {**env, "QLRF_DATABASE_URL": "postgresql://ops:s3cr3t-pw@127.0.0.1:1/runs"}
    result = qlrf("apply", str(path), env=unreachable, timeout=ANSWER_SECONDS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "QLRF_DATABASE_URL" in result.stderr and "ops:***@127.0.0.1:1" in result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "bug in qlrf-run" not in result.stderr
    listed = json.loads(qlrf("list", "--format", "json", env=env).stdout)
    assert not [r for r in listed if r["name"] == name], "no run may start"

    malformed = {**env, "QLRF_DATABASE_URL": "mysql://ops:s3cr3t-pw@db/runs"}
    result = qlrf("apply", str(path), env=malformed, timeout=ANSWER_SECONDS)
    assert result.returncode == 1 and "QLRF_DATABASE_URL" in result.stderr
    assert "postgresql://" in result.stderr and "s3cr3t-pw" not in result.stderr

    for args in (("history", "whatever"), ("evidence", "whatever"), ("list", "--store")):
        result = qlrf(*args, env=unreachable, timeout=ANSWER_SECONDS)
        assert result.returncode == 1 and "QLRF_DATABASE_URL" in result.stderr, args
        assert "s3cr3t-pw" not in result.stderr


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("http://temporal:7233", "has a scheme"),
        ("temporal.example.com", "not HOST:PORT"),
        ("temporal:port", "not HOST:PORT"),
        ("127.0.0.1:1", "cannot reach Temporal at 127.0.0.1:1"),
    ],
)
def test_a_broken_temporal_address_is_named(env, address, words):
    """A malformed or unreachable QLRF_TEMPORAL_ADDRESS: one line naming it, exit 1."""
    result = qlrf("status", "any", env={**env, "QLRF_TEMPORAL_ADDRESS": address}, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "QLRF_TEMPORAL_ADDRESS" in result.stderr and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "bug in qlrf-run" not in result.stderr


def test_status_pending_history_and_approve_answer_without_a_worker(env, tmp_path):
    """With the worker gone, status, pending and history answer from what the run
    published; approve and the control verbs say at once that no worker polls; the run
    loses nothing and goes on when a worker is back."""
    path, _ = _write(tmp_path, GATED)
    rid = _detach(path, env)
    first = _state(rid, env)  # no worker has seen the run yet
    assert first["status"] == "running" and first["published_because"]
    assert set(first["steps"]) == {"prepare", "review", "act"}

    worker = worker_process(env)
    try:
        _until(
            lambda: any(g["status"] == "waiting" for g in _state(rid, env)["gates"]),
            "the gate waits",
        )
    finally:
        _stop(worker)

    state = _state(rid, env)
    shapes.check(state, shapes.STATUS)
    assert state["run_id"] == rid and "no worker" in state["published_because"]
    assert state["steps"]["prepare"]["status"] == "succeeded"
    [gate] = state["gates"]
    assert gate["gate"] == "review" and gate["approvers"] == ["bob"]
    text = qlrf("status", rid, env=env, timeout=ANSWER_SECONDS)
    assert text.returncode == 0 and f"qlrf-run approve {rid} review" in text.stdout
    assert "as the run last published it" in text.stdout

    rows = _until(lambda: _rows("pending", rid, env), "pending lists the gate")
    shapes.check(rows, shapes.PENDING)
    assert rows[0]["gate"] == "review"

    history = qlrf("history", rid, "--format", "json", env=env, timeout=ANSWER_SECONDS)
    assert history.returncode == 0
    shapes.check(json.loads(history.stdout), shapes.HISTORY)

    for args in (("approve", rid, "review", "--as", "bob"), ("pause", rid)):
        refused = qlrf(*args, env=env, timeout=ANSWER_SECONDS)
        assert refused.returncode == 1 and "no worker" in refused.stderr, args
        assert env["QLRF_TASK_QUEUE"] in refused.stderr

    worker = worker_process(env)
    try:
        approved = _until(
            lambda: qlrf("approve", rid, "review", "--as", "bob", env=env).returncode == 0,
            "a new worker takes the decision",
        )
        assert approved
        final = _until(
            lambda: (s := _state(rid, env))["status"] == "succeeded" and s, "the run ends"
        )
        assert "published_because" not in final
    finally:
        _stop(worker)


def test_run_id_is_the_same_name_in_every_shape(env, tmp_path):
    """The run_id that apply prints is the RUN that status, list, pending, history, logs
    and evidence take and print; Temporal's own id is temporal_run_id; times are UTC
    with milliseconds and a Z."""
    path, name = _write(tmp_path, SLOW.replace("sleep 1", "true"))
    applied = qlrf("apply", str(path), "--format", "json", env=env, timeout=120)
    assert applied.returncode == 0, applied.stderr
    state = json.loads(applied.stdout)
    shapes.check(state, shapes.STATUS)
    rid = state["run_id"]
    assert rid.startswith(name) and state["temporal_run_id"] != rid
    shapes.check(_state(rid, env), shapes.STATUS)

    rows = _until(lambda: _rows("list", rid, env), "list shows the run")
    shapes.check(rows, shapes.LIST)
    assert rows[0]["temporal_run_id"] == state["temporal_run_id"]
    stored = json.loads(qlrf("list", "--store", "--format", "json", env=env).stdout)
    shapes.check(stored, shapes.LIST)
    assert [r["temporal_run_id"] for r in stored if r["run_id"] == rid] == [
        state["temporal_run_id"]
    ]

    history = json.loads(qlrf("history", rid, "--format", "json", env=env).stdout)
    shapes.check(history, shapes.HISTORY)
    logs = json.loads(qlrf("logs", rid, "count", "--format", "json", env=env).stdout)
    shapes.check(logs, shapes.LOGS)
    bundle = json.loads(qlrf("evidence", rid, env=env).stdout)
    shapes.check(bundle, shapes.EVIDENCE)
    assert bundle["run"]["run_id"] == rid
    assert "name: " + name in bundle["definition"]["text"]  # kept by the store, not the input


def test_logs_show_output_while_the_step_runs(env, tmp_path):
    """`logs RUN STEP --follow` prints lines while the step still runs, each once, and
    ends with the step; stdout and stderr stay apart; fan-out items have their own."""
    path, _ = _write(tmp_path, SLOW)
    rid = _detach(path, env)
    worker = worker_process(env)
    try:
        follower = _spawn(["logs", rid, "count", "--follow"], env)
        assert follower.stdout is not None
        first = follower.stdout.readline()
        # The first line came while the step was still running.
        assert _state(rid, env)["steps"]["count"]["status"] == "running"
        rest, errors = follower.communicate(timeout=120)
        assert follower.returncode == 0, errors
        lines = [first.rstrip("\n"), *rest.splitlines()]
        assert lines == [f"line {i}" for i in range(1, 9)] + ["the end"]
        assert [e for e in errors.splitlines() if e.startswith("note")] == [
            f"note {i}" for i in range(1, 9)
        ]
        _until(lambda: _state(rid, env)["status"] == "succeeded", "the run ends")
    finally:
        _stop(worker)

    again = qlrf("logs", rid, "count", env=env)
    assert again.stdout.splitlines() == [f"line {i}" for i in range(1, 9)] + ["the end"]
    item = qlrf("logs", rid, "fleet", "--item", "web-2", env=env)
    assert item.returncode == 0 and item.stdout.strip() == "patched web-2"
    every = qlrf("logs", rid, env=env)
    assert "== count (succeeded) ==" in every.stdout
    unknown = qlrf("logs", rid, "nope", env=env)
    assert unknown.returncode == 1 and "has no step 'nope'" in unknown.stderr


def test_ctrl_c_stops_following_and_the_run_goes_on(env, tmp_path):
    """The first Ctrl-C stops following, names `qlrf-run watch RUN`, and exits 130; the
    run still runs. `watch` follows it the same way."""
    path, name = _write(tmp_path, GATED)
    rid = f"{name}-run"
    applying = _spawn(["apply", str(path), "--run-id", rid], env)
    assert applying.stdout is not None
    while "waits for bob" not in (line := applying.stdout.readline()):
        assert line, "apply ended before the gate"
    applying.send_signal(signal.SIGINT)
    out, errors = applying.communicate(timeout=60)
    assert applying.returncode == 130, errors
    assert f"qlrf-run watch {rid}" in errors and "goes on" in errors
    assert _state(rid, env)["status"] == "running"

    worker = worker_process(env)
    try:
        watching = _spawn(["watch", rid], env)
        assert watching.stdout is not None
        assert watching.stdout.readline().startswith(f"watching run {rid}")
        assert qlrf("approve", rid, "review", "--as", "bob", env=env).returncode == 0
        out, errors = watching.communicate(timeout=120)
        assert watching.returncode == 0, errors
        assert "approved by bob" in out and f"run {rid} succeeded" in out
    finally:
        _stop(worker)


def _in_terminal(args: list[str], env: dict[str, str], seconds: float = 120) -> tuple[int, str]:
    """Run the command on a pseudo-terminal, as in an operator's shell."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **env, "TERM": "xterm-256color", "COLUMNS": "160"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks: list[bytes] = []

    def ended() -> bool:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if not ready:
            return process.poll() is not None
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command ended
            return True
        chunks.append(data)
        return not data

    eventually(ended, lambda: f"{args} ends; it printed {b''.join(chunks)!r}", seconds, poll=0)
    os.close(leader)
    code = process.wait(timeout=30)
    return code, b"".join(chunks).decode(errors="replace")


def test_colour_in_a_terminal_and_never_elsewhere(env, tmp_path):
    """In a terminal, apply redraws its view and colours what it says; NO_COLOR and
    --no-color turn colour off; piped output is a plain log."""
    path, name = _write(tmp_path, SLOW.replace("sleep 1", "sleep 0.3"))
    code, shown = _in_terminal([EXE, "apply", str(path), "--run-id", name], env)
    assert code == 0, shown
    assert "\x1b[32m" in shown  # green: ok
    assert "\x1b[2K" in shown  # the redrawn view clears its lines
    assert f"run {name} " in shown and "succeeded" in shown

    code, plain = _in_terminal([EXE, "status", name], {**env, "NO_COLOR": "1"})
    assert code == 0 and "\x1b[32m" not in plain and "\x1b[31m" not in plain
    code, plain = _in_terminal([EXE, "--no-color", "status", name], env)
    assert code == 0 and "\x1b[32m" not in plain and "succeeded" in plain
    code, coloured = _in_terminal([EXE, "status", name], env)
    assert code == 0 and "\x1b[32m" in coloured
    piped = qlrf("status", name, env=env)
    assert "\x1b[" not in piped.stdout and "succeeded" in piped.stdout


HOSTILE = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
steps:
  - id: probe
    type: shell
    retry: {{max_attempts: 1}}
    with:
      script: |
        printf 'before\\033]52;c;cm0gLXJmIH4=\\007\\033[2J\\rhidden\\n'
        printf 'err\\033]0;pwned\\007\\n' >&2
        exit 4
"""


def test_what_a_step_printed_is_shown_not_obeyed_in_a_terminal(env, tmp_path):
    """A hostile step's escape sequences (clipboard write, clear screen, retitle, a
    carriage return hiding a line) reach the operator's terminal as visible
    characters, in apply's live view, in status and in logs; a pipe gets the bytes."""
    path, name = _write(tmp_path, HOSTILE)
    code, shown = _in_terminal([EXE, "apply", str(path), "--run-id", name], env)
    assert code == 1, shown
    for command in (["apply", str(path), "--run-id", name], ["status", name], ["logs", name]):
        code, shown = _in_terminal([EXE, *command], env)
        assert "\x1b]52" not in shown and "\x1b[2J" not in shown and "\x1b]0;" not in shown
    assert "\u241b]52;c;cm0gLXJmIH4=" in shown and "\u240dhidden" in shown  # logs
    piped = qlrf("logs", name, "probe", env=env)
    assert "\x1b]52;c;cm0gLXJmIH4=" in piped.stdout  # the bytes, for a file or a grep
