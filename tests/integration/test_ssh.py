"""The `ssh` step against real OpenSSH servers on 127.0.0.1 (runner/local/testhosts.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.local.temporal import port_free
from tests.fixtures import testhosts
from tests.helpers.processes import alive
from tests.helpers.runs import Outcome
from tests.helpers.waiting import eventually

KEY = "TESTHOSTS_SSH_KEY"
TRUE = 'command: ["true"]'
PRINTF = 'command: [printf, "%s", "{{ inputs.note }}"]'
DEADLINE = 60.0


@pytest.fixture
def sshrun(
    run: Callable[..., Outcome], hosts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Outcome]:
    """Like `run`, with the hosts' key as the secret TESTHOSTS_SSH_KEY on the worker."""
    monkeypatch.setenv(f"QLRF_SECRET_{KEY}", hosts["key"])
    return run


def step(host: dict[str, Any], body: str, known_hosts: str, **more: str) -> str:
    extra = "".join(f"\n      {k}: {v}" for k, v in more.items())
    return f"""
    with:
      host: {host["address"]}
      port: {host["port"]}
      user: {host["user"]}
      key_secret: {KEY}
      known_hosts: {known_hosts}{extra}
      {body}"""


def runbook(steps: str, inputs: str = "") -> str:
    return f"""
apiVersion: qlrf/v1
kind: Runbook
name: ssh-test
{inputs}
steps:{steps}
"""


def test_a_script_runs_on_every_host_and_templates_stay_text(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path
) -> None:
    marker = tmp_path / "injected"
    hostile = f"x'; touch {marker}; echo '$(touch {marker})`touch {marker}`"
    text = runbook(
        f"""
  - id: facts
    type: ssh
    foreach: {json.dumps(hosts["hosts"])}
    as: host
    with:
      host: "{{{{ host.address }}}}"
      port: "{{{{ host.port }}}}"
      user: "{{{{ host.user }}}}"
      key_secret: {KEY}
      known_hosts: {hosts["known_hosts"]}
      env: {{GREETING: "{{{{ inputs.note }}}}"}}
      script: |
        echo "$QLRF_TESTHOST {{{{ inputs.note }}}}"
        echo "$GREETING" >&2
        echo "$QLRF_STEP $QLRF_ITEM"
  - id: argv
    type: ssh{step(hosts["hosts"][0], PRINTF, hosts["known_hosts"])}
""",
        "inputs:\n  note: {type: string}",
    )
    outcome = sshrun(text, [f"note={hostile}"])
    assert outcome.state["status"] == "succeeded", outcome.state.get("error")
    items = outcome.step("facts")["output"]["items"]
    for item, host in zip(items, hosts["hosts"], strict=True):
        lines = item["output"]["stdout"].splitlines()
        assert lines[0] == f"{host['name']} {hostile}"
        assert lines[1].startswith("facts ")
        assert item["output"]["stderr"] == hostile + "\n"
    assert outcome.step("argv")["output"]["stdout"] == hostile
    assert not marker.exists()


def test_an_unknown_or_changed_host_key_is_refused_and_not_retried(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path
) -> None:
    host = hosts["hosts"][0]
    other = hosts["hosts"][1]
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    # host-1's port, with host-2's key: what a rebuilt or impersonated host looks like
    other_key = (Path(other["home"]) / "ssh_host_ed25519_key.pub").read_text().split()
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{host['port']} {other_key[0]} {other_key[1]}\n")
    for known in (empty, changed):
        outcome = sshrun(runbook(f"\n  - id: s\n    type: ssh{step(host, TRUE, str(known))}"))
        error = outcome.step("s")["error"]
        assert error["type"] == "HostKeyMismatch", error
        assert outcome.step("s")["attempts"] == 1
        assert "known_hosts" in error["message"]


def test_accept_new_trusts_a_first_key_and_refuses_a_changed_one(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path, monkeypatch
) -> None:
    folder = tmp_path / "hosts"
    fresh = testhosts.start(folder, 1)[0].__dict__
    monkeypatch.setenv(f"QLRF_SECRET_{KEY}", (folder / "client_key").read_text())
    try:
        first = sshrun(
            runbook(f"\n  - id: s\n    type: ssh{step(fresh, TRUE, 'accept-new')}"),
        )
        assert first.state["status"] == "succeeded", first.state.get("error")
        # the host is rebuilt with a new key, on the same port
        testhosts.stop(folder)
        home = Path(fresh["home"])
        port = int((home / "sshd_config").read_text().split()[1])
        eventually(lambda: port_free(port), "the old sshd lets go of its port", poll=0.05)
        (home / "ssh_host_ed25519_key").unlink()
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                str(home / "ssh_host_ed25519_key"),
            ],
            check=True,
            input="y\n",
            text=True,
        )
        _restart(home)
        second = sshrun(
            runbook(f"\n  - id: s\n    type: ssh{step(fresh, TRUE, 'accept-new')}"),
        )
        assert second.step("s")["error"]["type"] == "HostKeyMismatch"
    finally:
        testhosts.stop(folder)


def _restart(home: Path) -> None:
    subprocess.Popen(
        [testhosts.sshd_path(), "-f", str(home / "sshd_config"), "-E", str(home / "sshd.log")],
        start_new_session=True,
    )
    port = int((home / "sshd_config").read_text().split()[1])
    eventually(lambda: testhosts.answers(port), "sshd comes back", DEADLINE, poll=0.05)


def test_a_refused_key_fails_with_ssh_auth_error_at_once(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path, monkeypatch
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    monkeypatch.setenv(f"QLRF_SECRET_{KEY}", stranger.read_text())
    host = hosts["hosts"][0]
    outcome = sshrun(runbook(f"\n  - id: s\n    type: ssh{step(host, TRUE, hosts['known_hosts'])}"))
    error = outcome.step("s")["error"]
    assert error["type"] == "SSHAuthError" and outcome.step("s")["attempts"] == 1
    assert "permission denied" in error["message"]
    # the key is a secret: it appears nowhere
    assert stranger.read_text().splitlines()[1] not in outcome.history_text()


def test_a_host_that_does_not_answer_is_retried_then_named(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any]
) -> None:
    dead = {**hosts["hosts"][0], "port": testhosts.free_port()}
    body = TRUE
    text = runbook(
        "\n  - id: s\n    type: ssh\n    retry: {max_attempts: 2, initial_interval: 100ms}"
        + step(dead, body, hosts["known_hosts"], connect_timeout="2s")
    )
    outcome = sshrun(text)
    error = outcome.step("s")["error"]
    assert error["type"] == "SSHConnectionError", error
    assert outcome.step("s")["attempts"] == 2
    assert f"127.0.0.1:{dead['port']}" in error["message"] and "cannot connect" in error["message"]


def _gone(pid: int) -> bool:
    return not alive(pid)


def _wait_file(path: Path) -> str:
    eventually(
        lambda: path.exists() and path.read_text().strip(), f"{path} appears", DEADLINE, poll=0.05
    )
    return path.read_text().strip()


@pytest.mark.parametrize("ending", ["cancel", "timeout"])
def test_cancel_and_timeout_kill_the_remote_process(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path, ending: str
) -> None:
    pidfile = tmp_path / "pid"
    host = hosts["hosts"][1]
    script = f'script: "sleep 300 & echo $! > {pidfile}; wait"'
    timeout = "\n    timeout: 3s" if ending == "timeout" else ""
    text = runbook(
        f"\n  - id: s\n    type: ssh\n    retry: {{max_attempts: 1}}{timeout}"
        + step(host, script, hosts["known_hosts"])
    )

    async def cancel(handle: Any) -> None:
        import asyncio

        pid = await asyncio.to_thread(_wait_file, pidfile)
        assert not _gone(int(pid))
        await handle.cancel()

    outcome = sshrun(text, while_running=cancel if ending == "cancel" else None)
    pid = int(_wait_file(pidfile))
    eventually(lambda: _gone(pid), "the remote sleep ends with its step", 15, poll=0.1)
    status = outcome.step("s")
    if ending == "timeout":
        assert status["error"]["type"] == "CommandTimedOut"
    else:
        assert status["status"] == "cancelled"


def test_secrets_are_masked_in_what_comes_back(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], monkeypatch
) -> None:
    monkeypatch.setenv("QLRF_SECRET_DB_PASSWORD", "hunter2-very-secret")
    host = hosts["hosts"][2]
    body = (
        'script: "echo pw={{ secrets.DB_PASSWORD }}; echo {{ secrets.DB_PASSWORD }} | base64 >&2"'
    )
    outcome = sshrun(runbook(f"\n  - id: s\n    type: ssh{step(host, body, hosts['known_hosts'])}"))
    output = outcome.step("s")["output"]
    assert output["stdout"] == "pw=***\n"
    assert "hunter2" not in json.dumps(outcome.state) and "hunter2" not in outcome.history_text()


def test_steps_on_one_host_share_a_connection(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any]
) -> None:
    host = hosts["hosts"][2]
    log = Path(host["home"]) / "sshd.log"
    before = log.read_text().count("Accepted publickey")
    steps = "".join(
        f"\n  - id: s{i}\n    type: ssh{step(host, TRUE, hosts['known_hosts'])}" for i in range(5)
    )
    outcome = sshrun(runbook(steps))
    assert outcome.state["status"] == "succeeded"
    assert log.read_text().count("Accepted publickey") - before == 1


def test_items_that_start_together_on_one_host_share_one_login(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any]
) -> None:
    host = hosts["hosts"][1]
    log = Path(host["home"]) / "sshd.log"
    before = log.read_text().count("Accepted publickey")
    text = runbook(
        f"""
  - id: s
    type: ssh
    foreach: {json.dumps([f"item-{i}" for i in range(12)])}
    concurrency: 12{step(host, 'command: [echo, "{{ item }}"]', hosts["known_hosts"])}
"""
    )
    outcome = sshrun(text)
    assert outcome.state["status"] == "succeeded", outcome.state.get("error")
    assert log.read_text().count("Accepted publickey") - before == 1


def test_a_connection_lost_mid_step_is_retried_as_a_new_attempt(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path
) -> None:
    host = hosts["hosts"][0]
    started = tmp_path / "started"
    script = (
        f'script: "if [ -f {started} ]; then echo second; exit 0; fi; '
        f'echo $$ > {started}; sleep 300"'
    )
    text = runbook(
        "\n  - id: s\n    type: ssh\n    retry: {max_attempts: 3, initial_interval: 100ms}"
        + step(host, script, hosts["known_hosts"])
    )

    async def cut(handle: Any) -> None:
        import asyncio

        await asyncio.to_thread(_wait_file, started)
        # kill the host's per-connection sshd processes (not the listener)
        master = int((Path(host["home"]) / "sshd.pid").read_text())
        for child in _children(master):
            os.kill(child, signal.SIGKILL)

    outcome = sshrun(text, while_running=cut)
    status = outcome.step("s")
    assert status["status"] == "succeeded", status
    assert status["output"]["stdout"] == "second\n"
    assert status["attempts"] == 2
    assert status["failed_attempts"][0]["type"] == "SSHConnectionError"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("policy", ["met", "missed"])
def test_the_compliance_example_collects_real_facts_over_ssh(
    sshrun: Callable[..., Outcome],
    hosts: dict[str, Any],
    tmp_path: Path,
    policy: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """examples/compliance-evidence.yaml on the test hosts: the installed openssh-server,
    sshd's effective settings and each host's certificate, checked against policy; the
    evidence bundle is written either way, sealed by the worker, and verifies."""
    import subprocess

    from tests.helpers.cli import ROOT, qlrf

    seal = tmp_path / "seal"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(seal)], check=True)
    kind, blob = Path(f"{seal}.pub").read_text().split()[:2]
    trust = tmp_path / "allowed_signers"
    trust.write_text(f'worker-1 namespaces="qlrf-seal" {kind} {blob}\n')
    monkeypatch.setenv("QLRF_SEAL_KEY", str(seal))

    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(hosts["hosts"]))
    inputs = [
        f"hosts=@{inventory}",
        f"known_hosts={hosts['known_hosts']}",
        f"evidence_dir={tmp_path}",
    ]
    if policy == "missed":
        inputs.append(f"min_certificate_days={testhosts.CERT_DAYS + 1}")
    outcome = sshrun((ROOT / "examples" / "compliance-evidence.yaml").read_text(), inputs)
    items = outcome.step("facts")["output"]["items"]
    assert len(items) == 3
    for item in items:
        facts = item["output"]["json"]
        assert facts["password_authentication"] == "no"
        assert facts["permit_root_login"] in ("prohibit-password", "without-password")
        assert facts["openssh_recent"] is True and facts["openssh_server"] != "none"
        assert testhosts.CERT_DAYS - 1 <= facts["certificate_days_left"] <= testhosts.CERT_DAYS
    bundle = outcome.step("bundle")["output"]["path"]
    assert Path(bundle).exists() and Path(bundle).parent == tmp_path
    checked = qlrf("evidence", "--verify", bundle, "--allowed-signers", str(trust))
    assert checked.returncode == 0 and "sealed by worker-1" in checked.stdout, checked.stderr
    if policy == "met":
        assert outcome.state["status"] == "succeeded", outcome.state.get("error")
        assert outcome.state["outputs"]["hosts"] == 3
    else:
        assert outcome.state["status"] == "failed"
        assert outcome.step("certificates")["error"]["type"] == "AssertionFailed"
        assert outcome.step("no-passwords")["status"] == "succeeded"


def test_the_drift_example_restores_only_the_drifted_hosts_over_ssh(
    sshrun: Callable[..., Outcome], tmp_path: Path, monkeypatch
) -> None:
    """examples/drift-remediation.yaml on hosts of its own: two of three hosts drift; the
    campaign finds them, restores their sshd_config in waves, reloads their sshd (which
    still answers), and verifies them; the third host is left alone."""
    from tests.helpers.cli import ROOT

    folder = tmp_path / "fleet"
    fleet = [h.__dict__ for h in testhosts.start(folder, 3)]
    try:
        monkeypatch.setenv(f"QLRF_SECRET_{KEY}", (folder / "client_key").read_text())
        drift = {
            "host-2": ("PasswordAuthentication no", "PasswordAuthentication yes"),
            "host-3": ("PermitRootLogin prohibit-password", "PermitRootLogin yes"),
        }
        untouched = Path(fleet[0]["sshd_config"]).read_text()
        for host in fleet:
            if host["name"] in drift:
                config = Path(host["sshd_config"])
                old, new = drift[host["name"]]
                config.write_text(config.read_text().replace(old, new))
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps(fleet))
        outcome = sshrun(
            (ROOT / "examples" / "drift-remediation.yaml").read_text(),
            [f"hosts=@{inventory}", f"known_hosts={folder / 'known_hosts'}"],
        )
        assert outcome.state["status"] == "succeeded", outcome.state.get("error")
        result = outcome.state["outputs"]
        assert result["checked"] == 3 and result["verified"] == 2
        assert result["remediated"] == ["host-2", "host-3"]
        waves = outcome.step("remediate")["output"]["waves"]
        assert [(w["name"], w["size"]) for w in waves] == [("canary", 1), ("rest", 1)]
        for host in fleet:
            text = Path(host["sshd_config"]).read_text()
            assert "PasswordAuthentication no" in text
            assert "PermitRootLogin prohibit-password" in text
            assert testhosts.answers(host["port"])  # reloaded, still serving
        assert Path(fleet[0]["sshd_config"]).read_text() == untouched
    finally:
        testhosts.stop(folder)


def test_a_known_hosts_that_is_not_one_is_refused_without_showing_its_content(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], tmp_path: Path, monkeypatch
) -> None:
    """A runbook may point known_hosts (or known_hosts_secret) at any file of the worker:
    the error names the line, never what it holds."""
    shadow = tmp_path / "shadow"
    shadow.write_text("# comment\nroot:$6$salt$NOT-FOR-YOUR-EYES:19000:0:99999:7:::\n")
    monkeypatch.setenv("QLRF_SECRET_KNOWN", "root:$6$salt$SECRET-LINE-TOO")
    host = hosts["hosts"][0]
    directory = tmp_path / "a-folder"
    directory.mkdir()
    cases = [
        (str(shadow), "is not in known_hosts form (line 2)"),
        (str(tmp_path / "missing"), "known_hosts"),
        (str(directory), "directory"),
    ]
    for known, said in cases:
        outcome = sshrun(runbook(f"\n  - id: s\n    type: ssh{step(host, TRUE, known)}"))
        error = outcome.step("s")["error"]
        assert error["type"] == "HostKeyMismatch" and said in error["message"], error
        assert outcome.step("s")["attempts"] == 1
        assert "NOT-FOR-YOUR-EYES" not in outcome.history_text()
    body = TRUE + "\n      known_hosts_secret: KNOWN"
    text = f"""
    with:
      host: {host["address"]}
      port: {host["port"]}
      key_secret: {KEY}
      {body}"""
    outcome = sshrun(runbook(f"\n  - id: s\n    type: ssh{text}"))
    error = outcome.step("s")["error"]
    assert error["type"] == "HostKeyMismatch" and "the known_hosts secret" in error["message"]
    assert "SECRET-LINE-TOO" not in outcome.history_text()


def test_a_secret_that_is_not_a_key_is_refused_without_showing_it(
    sshrun: Callable[..., Outcome], hosts: dict[str, Any], monkeypatch
) -> None:
    fake = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "bm90LWEta2V5LXJlYWxseQ==\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    monkeypatch.setenv(f"QLRF_SECRET_{KEY}", fake)
    host = hosts["hosts"][0]
    outcome = sshrun(runbook(f"\n  - id: s\n    type: ssh{step(host, TRUE, hosts['known_hosts'])}"))
    error = outcome.step("s")["error"]
    assert error["type"] == "SSHAuthError" and "usable private key" in error["message"]
    assert "bm90LWEta2V5" not in outcome.history_text()
