"""`locks:` on real servers: one holder per key, waiters in line, released on every ending."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from runner.client import runs
from runner.contract import LOCK_ACQUIRE, LOCK_NEWS, LOCK_RELEASE, lock_workflow_id
from runner.engine.lock import FENCE
from runner.pipeline import compile_file
from runner.worker import build_worker
from tests.helpers.cli import qlrf
from tests.helpers.waiting import eventually_async

DEADLINE = 90.0  # a guard against hangs, not a speed check

HOLDER = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
inputs:
  cluster: {{type: string, required: true}}
  label: {{type: string, required: true}}
{run_locks}
steps:
  - id: work
    type: shell
    retry: {{max_attempts: 1}}
{step_locks}
    with:
      script: |
        echo "start {{{{ inputs.label }}}}" >> {log}
        while [ ! -f {dir}/go-{{{{ inputs.label }}}} ]; do sleep 0.05; done
        echo "end {{{{ inputs.label }}}}" >> {log}
"""


def runbook(tmp_path: Path, *, on: str = "run", timeout: str | None = None) -> Path:
    """A runbook whose one step logs its start, waits for go-LABEL, and logs its end; the
    lock `db:{{ inputs.cluster }}` is on the run or on the step."""
    name = f"locked-{uuid.uuid4().hex[:8]}"
    key = '["db:{{ inputs.cluster }}"]'
    path = tmp_path / f"{name}.yaml"
    text = HOLDER.format(
        name=name,
        log=tmp_path / "log",
        dir=tmp_path,
        run_locks=f"locks: {key}" if on == "run" else "",
        step_locks=f"    locks: {key}" if on == "step" else "",
    )
    if timeout:
        text = text.replace("steps:\n", f"timeout: {timeout}\nsteps:\n", 1)
    path.write_text(text)
    return path


class Fleet:
    """Runs started on one worker, and what they wrote."""

    def __init__(self, client: Client, queue: str, tmp_path: Path) -> None:
        self.client = client
        self.queue = queue
        self.tmp_path = tmp_path
        self.log = tmp_path / "log"

    async def start(self, path: Path, cluster: str, label: str) -> WorkflowHandle[Any, Any]:
        compiled = compile_file(path, [f"cluster={cluster}", f"label={label}"])
        handle, _ = await runs.start(
            self.client,
            compiled.plan,
            compiled.inputs,
            "tester",
            workflow_id=f"{label}-{uuid.uuid4().hex[:6]}",
            task_queue=self.queue,
        )
        return handle

    def go(self, label: str) -> None:
        (self.tmp_path / f"go-{label}").touch()

    def lines(self) -> list[str]:
        return self.log.read_text().split("\n")[:-1] if self.log.exists() else []


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Until `check()` holds; the lock's workflow or the run may not answer yet."""
    return await eventually_async(check, what, DEADLINE, poll=0.05, ignoring=(Exception,))


async def lock_state(client: Client, key: str) -> dict[str, Any]:
    found: dict[str, Any] = await client.get_workflow_handle(lock_workflow_id(key)).query("state")
    return found


async def holds(client: Client, key: str, run: WorkflowHandle[Any, Any]) -> bool:
    state = await lock_state(client, key)
    return bool(state["holder"] and state["holder"]["run"] == run.id)


async def waits(client: Client, key: str, run: WorkflowHandle[Any, Any]) -> bool:
    state = await lock_state(client, key)
    return any(w["run"] == run.id for w in state["waiters"])


async def lock_ended(client: Client, key: str) -> bool:
    from temporalio.client import WorkflowExecutionStatus

    desc = await client.get_workflow_handle(lock_workflow_id(key)).describe()
    return desc.status != WorkflowExecutionStatus.RUNNING


@pytest.fixture
def on_fleet(temporal_address: str, tmp_path: Path) -> Callable[..., None]:
    """on_fleet(scenario, *args): run `scenario(fleet, *args)` with a worker of its own."""

    def go(scenario: Callable[..., Awaitable[None]], *args: Any) -> None:
        async def body() -> None:
            client = await Client.connect(temporal_address)
            queue = f"locks-{uuid.uuid4()}"
            async with build_worker(client, task_queue=queue):
                await scenario(Fleet(client, queue, tmp_path), *args)

        asyncio.run(body())

    return go


def test_three_runs_on_one_key_take_turns_in_order(on_fleet: Callable[..., None]) -> None:
    on_fleet(_test_three_runs_on_one_key_take_turns_in_order)


async def _test_three_runs_on_one_key_take_turns_in_order(fleet: Fleet) -> None:
    """Three runs on one key never overlap, and start in the order they asked."""
    path = runbook(fleet.tmp_path)
    key = f"c-{uuid.uuid4().hex[:6]}"
    a = await fleet.start(path, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(path, key, "b")
    await until(lambda: waits(fleet.client, f"db:{key}", b), "b waits")
    c = await fleet.start(path, key, "c")
    await until(lambda: waits(fleet.client, f"db:{key}", c), "c waits")
    # b shows whom it waits for, in its state
    state = await until(lambda: _waiting_state(b), "b's state says whom it waits for")
    hold = state["locks"][0]
    assert hold["key"] == f"db:{key}" and hold["status"] == "waiting"
    assert hold["holder"]["run"] == a.id and hold["holder"]["since"]
    assert state["steps"]["work"]["status"] == "pending"  # a run lock: no step has started
    for label in ("a", "b", "c"):
        fleet.go(label)
    for handle in (a, b, c):
        await asyncio.wait_for(handle.result(), DEADLINE)
    assert fleet.lines() == ["start a", "end a", "start b", "end b", "start c", "end c"]
    await until(lambda: lock_ended(fleet.client, f"db:{key}"), "the lock workflow ends")


async def _waiting_state(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    state: dict[str, Any] = await handle.query("state")
    locks = state.get("locks") or []
    return state if locks and locks[0].get("holder") else None


def test_a_different_key_runs_freely(on_fleet: Callable[..., None]) -> None:
    on_fleet(_test_a_different_key_runs_freely)


async def _test_a_different_key_runs_freely(fleet: Fleet) -> None:
    path = runbook(fleet.tmp_path, on="step")
    first, second = f"c-{uuid.uuid4().hex[:6]}", f"c-{uuid.uuid4().hex[:6]}"
    a = await fleet.start(path, first, "a")
    await until(lambda: holds(fleet.client, f"db:{first}", a), "a holds its lock")
    b = await fleet.start(path, second, "b")
    await until(lambda: holds(fleet.client, f"db:{second}", b), "b holds another key at once")
    fleet.go("b")
    await asyncio.wait_for(b.result(), DEADLINE)
    fleet.go("a")
    await asyncio.wait_for(a.result(), DEADLINE)
    assert fleet.lines() == ["start a", "start b", "end b", "end a"]


@pytest.mark.parametrize("ending", ["cancel", "terminate", "timeout"])
def test_a_holder_that_ends_releases_the_lock(on_fleet: Callable[..., None], ending: str) -> None:
    on_fleet(_test_a_holder_that_ends_releases_the_lock, ending)


async def _test_a_holder_that_ends_releases_the_lock(fleet: Fleet, ending: str) -> None:
    """Cancelled, terminated or timed out, a holder gives the key to the next waiter."""
    key = f"c-{uuid.uuid4().hex[:6]}"
    holder_book = runbook(fleet.tmp_path, on="step", timeout="3s" if ending == "timeout" else None)
    a = await fleet.start(holder_book, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(runbook(fleet.tmp_path, on="step"), key, "b")
    await until(lambda: waits(fleet.client, f"db:{key}", b), "b waits")
    if ending == "cancel":
        await a.cancel()
    elif ending == "terminate":
        await a.terminate("gone")
    ended = time.monotonic()
    if ending == "timeout":
        with contextlib.suppress(Exception):
            await asyncio.wait_for(a.result(), DEADLINE)
        ended = time.monotonic()
    await until(lambda: holds(fleet.client, f"db:{key}", b), "b holds the lock")
    handed = time.monotonic() - ended
    fleet.go("b")
    await asyncio.wait_for(b.result(), DEADLINE)
    assert "end a" not in fleet.lines() and fleet.lines()[-2:] == ["start b", "end b"]
    if ending == "terminate":
        # A terminated holder's steps may run until their next heartbeat tells them: the
        # key passes on after the fence (runner/engine/lock.py), not before.
        assert FENCE.total_seconds() - 1 < handed < FENCE.total_seconds() + 10, handed
    else:
        # "within a second" on a quiet machine: allow for a busy CI, not for a 30 s
        # heartbeat
        assert handed < 10, handed


WRITER = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
inputs:
  cluster: {{type: string}}
  label: {{type: string}}
steps:
  - id: work
    type: shell
    locks: ["db:{{{{ inputs.cluster }}}}"]
    timeout: {{start_to_close: 10m, heartbeat: 30s}}
    with:
      script: |
        while true; do echo "{{{{ inputs.label }}}} $(date +%s.%N)" >> {log}; sleep 0.1; done
"""


def test_a_terminated_holder_s_steps_stop_before_the_key_passes_on(
    on_fleet: Callable[..., None],
) -> None:
    on_fleet(_test_a_terminated_holder_s_steps_stop_before_the_key_passes_on)


async def _test_a_terminated_holder_s_steps_stop_before_the_key_passes_on(fleet: Fleet) -> None:
    """The adversarial review's case: a holder whose step writes ten times a second is
    terminated; the next holder's first write comes after the old one's last."""
    key = f"w-{uuid.uuid4().hex[:6]}"
    path = fleet.tmp_path / f"writer-{key}.yaml"
    path.write_text(WRITER.format(name=f"writer-{key}", log=fleet.log))
    a = await fleet.start(path, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(path, key, "b")
    await until(lambda: waits(fleet.client, f"db:{key}", b), "b waits")
    await until(lambda: _wrote(fleet, "a"), "a writes")
    await a.terminate("the attacker")
    await until(lambda: _wrote(fleet, "b"), "b writes, once it holds the key")
    await b.terminate("done")
    stamps = [line.split() for line in fleet.lines()]
    last_a = max(float(t) for who, t in stamps if who == "a")
    first_b = min(float(t) for who, t in stamps if who == "b")
    assert last_a < first_b, (last_a, first_b)


async def _wrote(fleet: Fleet, label: str) -> bool:
    return any(line.startswith(f"{label} ") for line in fleet.lines())


def test_lock_messages_read_from_history_forge_nothing(on_fleet: Callable[..., None]) -> None:
    on_fleet(_test_lock_messages_read_from_history_forge_nothing)


async def _test_lock_messages_read_from_history_forge_nothing(fleet: Fleet) -> None:
    """The tokens in a lock's history, sent back through the plain Temporal API: a
    release with the holder's token, a grant to the waiter, and an acquire for a
    workflow that never ends. None of them moves the key; the honest release does."""
    from temporalio.api.enums.v1 import EventType

    key = f"f-{uuid.uuid4().hex[:6]}"
    path = runbook(fleet.tmp_path, on="step")
    a = await fleet.start(path, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(path, key, "b")
    await until(lambda: waits(fleet.client, f"db:{key}", b), "b waits")
    lock = fleet.client.get_workflow_handle(lock_workflow_id(f"db:{key}"))
    requests: list[dict[str, Any]] = []
    async for event in lock.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "acquire":
                [found] = await fleet.client.data_converter.decode(attrs.input.payloads)
                requests.append(found)
    holder = next(r for r in requests if r["run"] == a.id)
    waiter = next(r for r in requests if r["run"] == b.id)
    await lock.signal("release", {"token": holder["token"]})
    await lock.signal("release", {"token": holder["token"], "mac": holder["mac"]})
    await b.signal("lock", {"key": f"db:{key}", "token": waiter["token"], "status": "granted"})
    squatter = {**holder, "run": "never-ends", "temporal_run_id": "", "token": "t" * 32}
    await lock.signal("acquire", squatter)
    await asyncio.sleep(2)  # time enough for any of them to have moved the key
    state = await lock_state(fleet.client, f"db:{key}")
    assert state["holder"]["run"] == a.id
    assert [w["run"] for w in state["waiters"]] == [b.id]
    b_state = await b.query("state")
    assert b_state["steps"]["work"]["status"] == "waiting"
    assert fleet.lines() == ["start a"]
    fleet.go("a")
    fleet.go("b")
    for handle in (a, b):
        await asyncio.wait_for(handle.result(), DEADLINE)
    assert fleet.lines() == ["start a", "end a", "start b", "end b"]


def test_a_waiter_that_is_cancelled_leaves_the_line(on_fleet: Callable[..., None]) -> None:
    on_fleet(_test_a_waiter_that_is_cancelled_leaves_the_line)


async def _test_a_waiter_that_is_cancelled_leaves_the_line(fleet: Fleet) -> None:
    path = runbook(fleet.tmp_path, on="step")
    key = f"c-{uuid.uuid4().hex[:6]}"
    a = await fleet.start(path, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(path, key, "b")
    await until(lambda: waits(fleet.client, f"db:{key}", b), "b waits")
    c = await fleet.start(path, key, "c")
    await until(lambda: waits(fleet.client, f"db:{key}", c), "c waits")
    await b.cancel()
    await until(lambda: _not(waits(fleet.client, f"db:{key}", b)), "b left the line")
    state = await lock_state(fleet.client, f"db:{key}")
    assert [w["run"] for w in state["waiters"]] == [c.id]
    b_state = await b.query("state")
    assert b_state["status"] == "cancelled" and b_state["locks"] == []
    assert b_state["steps"]["work"]["status"] == "cancelled"
    fleet.go("a")
    fleet.go("c")
    await asyncio.wait_for(c.result(), DEADLINE)
    assert fleet.lines() == ["start a", "end a", "start c", "end c"]


async def _not(found: Awaitable[bool]) -> bool:
    return not await found


def test_locks_status_and_pending_show_who_waits_for_whom(
    on_fleet: Callable[..., None], env: dict[str, str]
) -> None:
    on_fleet(_shown, env)


async def _shown(fleet: Fleet, env: dict[str, str]) -> None:
    path = runbook(fleet.tmp_path, on="step")
    key = f"c-{uuid.uuid4().hex[:6]}"
    a = await fleet.start(path, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(path, key, "b")
    await until(lambda: _waiting_state(b), "b knows whom it waits for")

    async def cli(*args: str) -> str:
        done = await asyncio.to_thread(qlrf, *args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    async def listed() -> dict[str, Any] | None:
        rows = json.loads(await cli("locks", "--format", "json"))
        row = next((r for r in rows if r["key"] == f"db:{key}"), None)
        return row if row and row["holder"] and row["waiters"] else None

    row = await until(listed, "`locks` lists the holder and the waiter")
    assert row["holder"]["run"] == a.id and row["holder"]["step"] == "work"
    assert [w["run"] for w in row["waiters"]] == [b.id] and "token" not in row["holder"]
    text = await cli("locks")
    assert f"db:{key}: held by run {a.id} (step work) since" in text
    assert f"1. run {b.id} (step work), waiting since" in text
    status = await cli("status", b.id)
    assert f"waiting for lock db:{key} (held by run {a.id} step work since" in status

    async def pending_row() -> dict[str, Any] | None:
        rows = json.loads(await cli("pending", "--format", "json"))
        return next((r for r in rows if r["run_id"] == b.id), None)

    found = await until(pending_row, "`pending` lists the waiting run")
    assert found["lock"] == f"db:{key}" and found["step"] == "work"
    assert found["message"].startswith(f"waiting for lock db:{key} (held by run {a.id}")
    assert f"{b.id} step work: waiting for lock db:{key}" in await cli("pending")
    fleet.go("a")
    fleet.go("b")
    await asyncio.wait_for(b.result(), DEADLINE)
    # the store has the lock's story of the run
    events = json.loads(await cli("history", b.id, "--format", "json"))
    actions = [e["event"] for e in events]
    assert "lock_acquired" in actions and "lock_released" in actions, actions


KEYED = """\
apiVersion: qlrf/v1
kind: Runbook
name: {name}
inputs:
  cluster: {{type: string, default: ""}}
locks: ["{{{{ inputs.cluster }}}}"]
steps:
  - id: work
    type: shell
{step_locks}
    with: {{command: [echo, ok]}}
"""


@pytest.mark.parametrize(
    "value, said",
    [
        (" ", "renders empty"),
        ("db\nprod", "control character"),
        ("x" * 300, "over the limit of 200"),
        ("{{ secrets.TOKEN }}", "secrets"),
    ],
    ids=["empty", "newline", "too-long", "a-template-value"],
)
def test_a_key_that_cannot_name_a_lock_refuses_the_run(
    on_fleet: Callable[..., None], value: str, said: str
) -> None:
    on_fleet(_bad_key, value, said)


async def _bad_key(fleet: Fleet, value: str, said: str) -> None:
    """Inputs are not templates: a value that looks like one stays text; the others are
    refused before anything runs, and no lock workflow is started."""
    path = fleet.tmp_path / "bad.yaml"
    path.write_text(KEYED.format(name="bad-key", step_locks=""))
    compiled = compile_file(path, [f"cluster={value}"])
    handle, _ = await runs.start(
        fleet.client, compiled.plan, compiled.inputs, "tester", task_queue=fleet.queue
    )
    if said == "secrets":
        await asyncio.wait_for(handle.result(), DEADLINE)  # a key like any other
        return
    with pytest.raises(Exception):  # noqa: B017 - the run fails; its state says why
        await asyncio.wait_for(handle.result(), DEADLINE)
    state = await handle.query("state")
    assert state["status"] == "failed" and state["error"]["type"] == "InvalidLockKey"
    assert said in state["error"]["message"]
    assert state["steps"]["work"]["status"] == "skipped"
    assert "\n" not in state["error"]["message"]


def test_a_step_locking_its_runs_key_fails_instead_of_waiting_for_ever(
    on_fleet: Callable[..., None],
) -> None:
    on_fleet(_conflict)


async def _conflict(fleet: Fleet) -> None:
    path = fleet.tmp_path / "nested.yaml"
    key = f"c-{uuid.uuid4().hex[:6]}"
    path.write_text(KEYED.format(name="nested", step_locks='    locks: ["{{ inputs.cluster }}"]'))
    compiled = compile_file(path, [f"cluster={key}"])
    handle, _ = await runs.start(
        fleet.client, compiled.plan, compiled.inputs, "tester", task_queue=fleet.queue
    )
    with pytest.raises(Exception):  # noqa: B017 - the run fails; its state says why
        await asyncio.wait_for(handle.result(), DEADLINE)
    state = await handle.query("state")
    assert state["steps"]["work"]["error"]["type"] == "LockConflict"
    await until(lambda: lock_ended(fleet.client, key), "the run's own lock is released")


def test_forged_signals_neither_grant_nor_steal_a_lock(on_fleet: Callable[..., None]) -> None:
    on_fleet(_forged)


async def _forged(fleet: Fleet) -> None:
    """Through the plain Temporal API: a fake grant to a waiter, junk and a forged
    release to the lock, a flood of junk requests. The waiter still waits, the holder
    still holds, and the line is unchanged."""
    path = runbook(fleet.tmp_path, on="step")
    key = f"c-{uuid.uuid4().hex[:6]}"
    lock = fleet.client.get_workflow_handle(lock_workflow_id(f"db:{key}"))
    a = await fleet.start(path, key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    b = await fleet.start(path, key, "b")
    await until(lambda: _waiting_state(b), "b waits")
    for news in (
        {"key": f"db:{key}", "token": "guessed", "status": "granted"},
        {"key": f"db:{key}", "status": "granted"},
        "granted",
        ["granted"],
        {"token": {"$ne": ""}, "status": "granted"},
        {"token": "x", "status": "waiting", "holder": {"run": "y" * 100_000}},
    ):
        await b.signal(LOCK_NEWS, news)
    for junk in ("x", 1, None, {"token": 5, "run": "r"}, {"token": "t"}, {"run": a.id}):
        await lock.signal(LOCK_ACQUIRE, junk)
        await lock.signal(LOCK_RELEASE, junk)
    await lock.signal(LOCK_RELEASE, {"token": "guessed"})
    await lock.signal(LOCK_RELEASE, {"run": a.id, "step": "work"})
    state = await lock_state(fleet.client, f"db:{key}")
    assert state["holder"]["run"] == a.id
    assert [w["run"] for w in state["waiters"]] == [b.id]
    b_state = await b.query("state")
    assert b_state["locks"][0]["status"] == "waiting"
    assert b_state["steps"]["work"]["status"] == "waiting"
    assert "start b" not in fleet.lines()
    fleet.go("a")
    fleet.go("b")
    await asyncio.wait_for(b.result(), DEADLINE)
    assert fleet.lines() == ["start a", "end a", "start b", "end b"]


@pytest.mark.parametrize(
    "junk",
    [{"key": 5, "queue": "x"}, {"key": "other", "holder": "zz", "queue": [1, None]}, "text"],
    ids=["key-a-number", "holder-text", "not-a-mapping"],
)
def test_a_lock_started_with_junk_through_the_api_still_serves_its_key(
    on_fleet: Callable[..., None], junk: Any
) -> None:
    on_fleet(_junk_lock, junk)


async def _junk_lock(fleet: Fleet, junk: Any) -> None:
    """Anyone can start qlrf.Lock through the Temporal API. A malformed input must not
    leave a lock whose tasks fail for ever, in front of every run that wants the key:
    the lock takes its key from its id, and the run behind it is served."""
    from runner.contract import LOCK_WORKFLOW_TYPE

    key = f"c-{uuid.uuid4().hex[:6]}"
    forged = await fleet.client.start_workflow(
        LOCK_WORKFLOW_TYPE, junk, id=lock_workflow_id(f"db:{key}"), task_queue=fleet.queue
    )
    await asyncio.wait_for(forged.result(), DEADLINE)  # nobody waits: it ends
    a = await fleet.start(runbook(fleet.tmp_path, on="step"), key, "a")
    await until(lambda: holds(fleet.client, f"db:{key}", a), "a holds the lock")
    fleet.go("a")
    await asyncio.wait_for(a.result(), DEADLINE)
    assert fleet.lines() == ["start a", "end a"]
