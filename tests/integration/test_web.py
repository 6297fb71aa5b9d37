"""The approvals service on real parts: a real OpenID provider, `qlrf-run serve` and a
`qlrf-run worker` in signed mode, runs started by the CLI with alice's key. Tokens,
cookies, CSRF and the run's own checks of the service's vouch, through the API and
through the plain Temporal API; SSH certificates from `ssh-keygen -s`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from runner.app.context import Context
from runner.app.reach import reach
from runner.client.connect import Target
from runner.trust import claims
from runner.web.vouch import Person, Voucher
from tests.helpers.cli import EXE, detached, qlrf, worker_process
from tests.helpers.waiting import eventually
from tests.helpers.web import (
    CLIENT_ID,
    CLIENT_SECRET,
    Served,
    keygen,
    provider,
    public,
    tokens,
)

INTERNAL_KEY = "web-internal-key-" + "w" * 32
GATED = """\
apiVersion: qlrf/v1
kind: Campaign
name: {name}
inputs:
  hosts: {{type: array, items: {{type: string}}, default: [web-1, web-2, web-3, web-4]}}
  batch: {{type: integer, default: 2}}
steps:
  - id: review
    type: approval
    with:
      message: "patch {{{{ inputs.hosts | length }}}} hosts?"
      approvers: [alice@example.com, bob@example.com, "group:sre"]
      allow_self_approval: false
      modifiable: [batch]
  - id: patch
    needs: [review]
    type: shell
    foreach: "{{{{ inputs.hosts }}}}"
    as: host
    waves:
      - {{name: canary, size: 1}}
      - {{name: rest, size: 100%}}
    max_failures: 1
    with:
      command: [echo, "patching {{{{ host }}}} in batches of {{{{ inputs.batch }}}}"]
"""


@pytest.fixture(scope="module")
def stack(
    temporal_address: str, postgres_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("web")
    keys = {n: keygen(folder, n) for n in ("vouch", "alice", "carol", "ca", "rogue-ca", "bob")}
    trust = folder / "allowed_signers"
    trust.write_text(
        "\n".join(
            [
                f'alice@example.com namespaces="qlrf" {public(keys["alice"])}',
                f'carol@example.com namespaces="qlrf" {public(keys["carol"])}',
                f'*@example.com,!mallory@example.com namespaces="qlrf-vouch" '
                f"{public(keys['vouch'])} qlrf-web",
                f'*@example.com cert-authority,namespaces="qlrf" {public(keys["ca"])}',
            ]
        )
        + "\n"
    )
    groups = folder / "groups.yaml"
    groups.write_text("sre: [erin@example.com]\noncall: [bob@example.com]\n")
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    queue = f"web-{uuid.uuid4().hex[:8]}"
    env = {
        "QLRF_TEMPORAL_ADDRESS": temporal_address,
        "QLRF_DATABASE_URL": postgres_uri,
        "QLRF_TASK_QUEUE": queue,
        "QLRF_ALLOWED_SIGNERS": str(trust),
        "QLRF_INTERNAL_KEY": INTERNAL_KEY,
        "QLRF_GROUPS_FILE": str(groups),
        "QLRF_POLICY": str(policy),
        "QLRF_LIBRARY": str(_library(folder)),
    }
    worker = worker_process(env)
    try:
        yield from _served(env, keys, folder)
    finally:
        worker.terminate()
        worker.wait(20)


# Only prod drills and agents' proposals are governed: the other tests run as before.
POLICY = """\
rules:
  - match: {kind: Drill, labels: {env: prod}}
    start: ['group:oncall']
    require: {committed: true}
proposals:
  principals: [agent@example.com]
  allow_types: [shell]
  max_items: 10
  forbid: ['rm\\s+-rf']
  gate: {approvers: ['group:oncall']}
"""
FAILOVER = """\
apiVersion: qlrf/v1
kind: Drill
name: failover
description: Fail the database over to another region
labels: {env: prod}
inputs:
  region: {type: string, enum: [eu, us], default: eu, description: where to}
steps:
  - id: promote
    type: shell
    with: {command: [echo, "promote {{ inputs.region }}"]}
"""


def _library(folder: Path) -> Path:
    """A git checkout holding one committed runbook, as QLRF_LIBRARY."""
    repo = folder / "library"
    repo.mkdir()
    (repo / "failover.yaml").write_text(FAILOVER)
    for args in (
        ["init", "-q", "-b", "main"],
        ["-c", "user.name=ops", "-c", "user.email=ops@example.com", "add", "failover.yaml"],
        ["-c", "user.name=ops", "-c", "user.email=ops@example.com", "commit", "-qm", "drill"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def _served(env: dict[str, str], keys: dict[str, Path], folder: Path) -> Iterator[dict[str, Any]]:
    with provider(token_seconds=4) as issuer, provider() as other:
        web_env = {
            **env,
            "QLRF_WEB_OIDC_ISSUER": issuer,
            "QLRF_WEB_OIDC_CLIENT_ID": CLIENT_ID,
            "QLRF_WEB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "QLRF_WEB_SESSION_KEY": "s" * 40,
            "QLRF_WEB_VOUCH_KEY": str(keys["vouch"]),
        }
        web_env.pop("QLRF_ALLOWED_SIGNERS")
        served = Served(web_env, folder / "serve.log")
        try:
            yield {
                "env": env,
                "web_env": web_env,
                "keys": keys,
                "issuer": issuer,
                "other": other,
                "web": served,
                "folder": folder,
            }
        finally:
            served.stop()


def start(stack: dict[str, Any], name: str | None = None) -> str:
    """A run of GATED, started and signed by alice with the CLI."""
    name = name or f"web-{uuid.uuid4().hex[:6]}"
    path = stack["folder"] / f"{name}.yaml"
    path.write_text(GATED.format(name=name))
    env = {**stack["env"], "QLRF_SIGNING_KEY": str(stack["keys"]["alice"])}
    run = detached(path, env)
    eventually(lambda: waiting(stack, run), f"gate review of {run} waiting", 60)
    return run


def waiting(stack: dict[str, Any], run: str) -> bool:
    found = qlrf("status", run, "--format", "json", env=stack["env"])
    return found.returncode == 0 and any(
        g["gate"] == "review" and g["status"] == "waiting"
        for g in json.loads(found.stdout)["gates"]
    )


def api(
    stack: dict[str, Any], method: str, path: str, token: str | None, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, stack["web"].url + path, headers=headers, timeout=30, **kw)


def decide_url(run: str, gate: str = "review") -> str:
    return f"/api/v1/runs/{run}/gates/{gate}/decisions"


def test_a_bearer_jwt_decides_and_the_run_records_the_vouched_principal(stack):
    run = start(stack)
    found = tokens(stack["issuer"], "bob@example.com")
    answer = api(
        stack,
        "POST",
        decide_url(run),
        found["id_token"],
        json={"decision": "approve", "comment": "lgtm"},
    )
    assert answer.status_code == 200, answer.text
    gate = answer.json()
    (approval,) = gate["approvals"]
    assert approval["by"] == "bob@example.com" and approval["verified"] is True
    assert approval["via"]["service"] == "web" and approval["via"]["issuer"] == stack["issuer"]
    # The run goes on; once it has ended the API's view is `status --format json`'s.
    eventually(
        lambda: (
            json.loads(qlrf("status", run, "--format", "json", env=stack["env"]).stdout)["status"]
            == "succeeded"
        ),
        "the run succeeding",
        60,
    )
    cli = json.loads(qlrf("status", run, "--format", "json", env=stack["env"]).stdout)
    # A fresh token: the provider's last a few seconds (for the expiry test below).
    fresh = tokens(stack["issuer"], "bob@example.com")["access_token"]
    web = api(stack, "GET", f"/api/v1/runs/{run}", fresh)
    assert web.status_code == 200 and web.json() == cli
    audit = qlrf("history", run, "--format", "json", env=stack["env"])
    assert "bob@example.com" in audit.stdout


def test_an_opaque_token_is_checked_at_userinfo_and_a_refusal_is_409_with_the_runs_words(stack):
    run = start(stack)
    found = tokens(stack["issuer"], "alice@example.com")
    answer = api(
        stack, "POST", decide_url(run), found["access_token"], json={"decision": "approve"}
    )
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "started this run and may not approve it" in answer.json()["detail"]
    outsider = tokens(stack["issuer"], "zed@example.com")
    answer = api(
        stack, "POST", decide_url(run), outsider["access_token"], json={"decision": "reject"}
    )
    assert answer.status_code == 409 and "may not decide gate 'review'" in answer.json()["detail"]
    # Outside the service key's patterns: the run itself refuses the vouch.
    mallory = tokens(stack["issuer"], "mallory@example.com")
    answer = api(
        stack, "POST", decide_url(run), mallory["access_token"], json={"decision": "reject"}
    )
    assert (
        answer.status_code == 409
        and "may not vouch for 'mallory@example.com'" in answer.json()["detail"]
    )
    assert (
        api(
            stack,
            "POST",
            decide_url(run, "nope"),
            found["access_token"],
            json={"decision": "reject"},
        ).status_code
        == 404
    )
    assert api(stack, "GET", "/api/v1/runs/no-such-run", found["access_token"]).status_code == 404
    injected = api(
        stack, "GET", "/api/v1/runs?kind=Task' OR WorkflowId != '", found["access_token"]
    )
    assert injected.status_code == 400 and "kind must be one of" in injected.json()["detail"]
    pending = api(stack, "GET", "/api/v1/pending", found["access_token"])
    assert any(row.get("run_id") == run for row in pending.json())


def test_forged_expired_other_issuer_and_other_audience_tokens_get_401(stack):
    run = start(stack)
    good = tokens(stack["issuer"], "bob@example.com")["id_token"]
    head, body, signature = good.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    other_issuer = tokens(stack["other"], "bob@example.com")["id_token"]
    other_audience = _token_for_client(stack["issuer"], "someone-else")
    for token in (forged, other_issuer, other_audience, "not-a-token-anyone-issued"):
        answer = api(stack, "POST", decide_url(run), token, json={"decision": "approve"})
        assert answer.status_code == 401, (token[:20], answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    # The provider's tokens last 4 s: once this one's exp has passed, it is refused.
    eventually(
        lambda: api(stack, "GET", "/api/v1/runs", good).status_code == 401,
        "the expired token refused",
        20,
    )
    assert api(stack, "GET", "/api/v1/runs", None).status_code == 401


def _token_for_client(issuer: str, client: str) -> str:
    import tests.helpers.web as web

    saved = web.CLIENT_ID
    web.CLIENT_ID = client
    try:
        return str(tokens(issuer, "bob@example.com")["id_token"])
    finally:
        web.CLIENT_ID = saved


def _sign_in(stack: dict[str, Any], who: str, web: str | None = None) -> tuple[httpx.Client, str]:
    """A session through the real flow, its cookie carried by hand (httpx keeps no
    Secure cookie over http, as browsers do for 127.0.0.1)."""
    web = web or stack["web"].url
    http = httpx.Client(timeout=30)
    cookie = ""
    url = f"{web}/login?next=/runs"
    for _ in range(6):
        headers = {"Cookie": cookie} if cookie and url.startswith(web) else {}
        if url.startswith(stack["issuer"]) and "/oauth2/authorize" in url:
            answer = http.post(url, data={"sub": who})
        else:
            answer = http.get(url, headers=headers)
        for value in answer.headers.get_list("set-cookie"):
            if value.startswith("__Host-qlrf="):
                cookie = value.split(";")[0]
                stack.setdefault("set_cookie", value)
        if answer.status_code not in (302, 303, 307):
            break
        url = urljoin(url, answer.headers["location"])
    assert url == f"{web}/runs", url
    return http, cookie


def test_sign_in_sets_the_host_cookie_and_a_cookie_post_needs_its_csrf_token(stack):
    run = start(stack)
    http, cookie = _sign_in(stack, "bob@example.com")
    flags = [p.strip().lower() for p in stack["set_cookie"].split(";")]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(flags)
    assert not any(p.startswith("domain") for p in flags)
    page = http.get(f"{stack['web'].url}/runs/{run}/gates/review", headers={"Cookie": cookie})
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == (
        "default-src 'self'; script-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    assert "<script>" not in page.text and "onclick" not in page.text
    url = stack["web"].url + decide_url(run)
    refused = http.post(url, json={"decision": "approve"}, headers={"Cookie": cookie})
    assert refused.status_code == 403
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    ok = http.post(
        url, json={"decision": "approve"}, headers={"Cookie": cookie, "X-CSRF-Token": csrf.group(1)}
    )
    assert ok.status_code == 200, ok.text
    # No decision through GET.
    assert http.get(url, headers={"Cookie": cookie}).status_code == 405


def _ctx(stack: dict[str, Any]) -> Any:
    async def make() -> Context:
        address = stack["env"]["QLRF_TEMPORAL_ADDRESS"]
        return Context(await Client.connect(address), Target(address, "default", None, False))

    return make


def _send_vouched(
    stack: dict[str, Any], run: str, key: Path, person: Person, *, on: str | None = None
) -> tuple[bool, str]:
    """A decision vouched with `key` for `person`, sent through the plain Temporal API;
    its claim built for run `on` (default: `run`)."""

    async def go() -> tuple[bool, str]:
        ctx = await _ctx(stack)()
        basis = (await reach(ctx, on or run, "decide")).basis
        payload = {"gate": "review", "decision": "reject", "comment": ""}
        claim = claims.decision_claim(payload, round_=basis.rounds.get("review"), **basis.ids())
        signed = {**payload, "proof": Voucher(key).proof(claim, person)}
        handle = ctx.client.get_workflow_handle(run)
        try:
            await handle.execute_update("decide", signed)
        except WorkflowUpdateFailedError as exc:
            return False, str(getattr(exc.cause, "message", exc.cause))
        return True, ""

    return asyncio.run(go())


def test_the_run_itself_refuses_vouches_outside_the_keys_patterns_from_a_qlrf_key_or_replayed(
    stack,
):
    run, other = start(stack), start(stack)
    erin = Person("erin@example.com", True, stack["issuer"], "erin", 1)
    ok, why = _send_vouched(
        stack, run, stack["keys"]["vouch"], Person("eve@other.org", True, "x", "eve", 1)
    )
    assert not ok and "may not vouch for 'eve@other.org'" in why
    ok, why = _send_vouched(stack, run, stack["keys"]["carol"], erin)
    assert not ok and 'namespaces="qlrf-vouch"' in why
    ok, why = _send_vouched(stack, run, stack["keys"]["vouch"], erin, on=other)
    assert not ok and "does not verify" in why
    ok, why = _send_vouched(stack, run, stack["keys"]["vouch"], erin)
    assert ok, why  # erin is in group sre, which may decide; the vouch is good


def _certificate(stack: dict[str, Any], name: str, ca: str, principal: str, validity: str) -> Path:
    folder = stack["folder"] / f"cert-{name}"
    folder.mkdir()
    key = keygen(folder, "key")
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(stack["keys"][ca]),
            "-I",
            name,
            "-n",
            principal,
            "-V",
            validity,
            f"{key}.pub",
        ],
        check=True,
    )
    return Path(f"{key}-cert.pub")


def test_ssh_certificates_are_their_principal_inside_their_window_only(stack):
    cases = {
        "expired": _certificate(stack, "expired", "ca", "bob@example.com", "20200101:20200102"),
        "elsewhere": _certificate(stack, "elsewhere", "ca", "eve@other.org", "-5m:+1h"),
        "rogue": _certificate(stack, "rogue", "rogue-ca", "bob@example.com", "-5m:+1h"),
        "good": _certificate(stack, "good", "ca", "bob@example.com", "-5m:+1h"),
    }
    # The private key given, its certificate beside it: signed as the certificate, as
    # ssh finds it.
    beside = _certificate(stack, "beside", "ca", "bob@example.com", "-5m:+1h")
    run = start(stack)
    said = {}
    for name, cert in cases.items():
        env = {**stack["env"], "QLRF_SIGNING_KEY": str(cert)}
        done = qlrf("approve", run, "review", env=env)
        said[name] = (done.returncode, done.stdout + done.stderr)
    assert said["expired"][0] != 0 and "outside its validity" in said["expired"][1]
    assert said["elsewhere"][0] != 0 and "not trusted by its CA's line" in said["elsewhere"][1]
    assert said["rogue"][0] != 0 and "CA is not on a cert-authority line" in said["rogue"][1]
    assert said["good"][0] == 0, said["good"][1]
    view = json.loads(qlrf("status", run, "--format", "json", env=stack["env"]).stdout)
    (approval,) = next(g for g in view["gates"] if g["gate"] == "review")["approvals"]
    assert approval["by"] == "bob@example.com" and approval["via"] == {"certificate": "good"}
    other = start(stack)
    key = Path(str(beside).removesuffix("-cert.pub"))
    done = qlrf("approve", other, "review", env={**stack["env"], "QLRF_SIGNING_KEY": str(key)})
    assert done.returncode == 0, done.stdout + done.stderr
    view = json.loads(qlrf("status", other, "--format", "json", env=stack["env"]).stdout)
    (approval,) = next(g for g in view["gates"] if g["gate"] == "review")["approvals"]
    assert approval["via"] == {"certificate": "beside"}


def test_serve_refuses_to_start_misconfigured_with_one_line_naming_the_variable(stack, tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("QLRF_WEB_")}
    cases = [
        ({}, ["--host", "0.0.0.0"], "QLRF_WEB_OIDC_ISSUER"),
        (
            {
                "QLRF_WEB_OIDC_ISSUER": stack["issuer"],
                "QLRF_WEB_OIDC_CLIENT_ID": "x",
                "QLRF_WEB_SESSION_KEY": "k" * 32,
            },
            [],
            "QLRF_WEB_VOUCH_KEY",
        ),
        (
            {
                "QLRF_WEB_OIDC_ISSUER": "http://127.0.0.1:9/nowhere",
                "QLRF_WEB_OIDC_CLIENT_ID": "x",
                "QLRF_WEB_SESSION_KEY": "k" * 32,
                "QLRF_WEB_VOUCH_KEY": str(stack["keys"]["vouch"]),
            },
            [],
            "QLRF_WEB_OIDC_ISSUER",
        ),
        ({"QLRF_WEB_OIDC_ISSUER": "not a url"}, [], "QLRF_WEB_OIDC_ISSUER"),
    ]
    for extra, args, variable in cases:
        done = subprocess.run(
            [EXE, "serve", "--port", "1", *args],
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and variable in lines[0], done.stderr
        assert "Traceback" not in done.stderr


HOSTILE = """\
apiVersion: qlrf/v1
kind: Task
name: {name}
inputs:
  note: {{type: string, default: "<script>window.pwned = 'input'</script>"}}
steps:
  - id: speak
    type: shell
    with:
      command: [printf, '%s', "<b id=bold>loud</b> \\u001b[31mred <img src=x id=img2>"]
  - id: review
    needs: [speak]
    type: approval
    with:
      message: "<img src=x id=img onerror=\\"window.pwned='message'\\"> {{{{ inputs.note }}}}"
      approvers: [bob@example.com]
"""


@pytest.fixture(scope="module")
def chrome(stack: dict[str, Any]) -> Iterator[Any]:
    from tests.helpers.web import browser

    driver = browser(stack["folder"] / "chromium")
    try:
        yield driver
    finally:
        driver.quit()


def _browser_sign_in(driver: Any, stack: dict[str, Any], who: str, path: str = "/") -> None:
    from selenium.webdriver.common.by import By

    web = stack["web"].url
    driver.delete_all_cookies()
    driver.get(web + path)
    # The provider's own sign-in form.
    eventually(lambda: driver.current_url.startswith(stack["issuer"]), "the provider's form", 20)
    field = driver.find_element(By.NAME, "sub")
    field.send_keys(who)
    field.submit()
    eventually(
        lambda: (
            driver.current_url.startswith(web)
            and driver.find_elements(By.ID, "principal")
            and driver.find_element(By.ID, "principal").text == who
        ),
        f"signed in as {who}",
        20,
    )


def _text(driver: Any, element_id: str) -> str:
    """The element's text, "" when it is not there (or the live page just swapped it)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.ID, element_id)
        return str(found[0].text) if found else ""
    except StaleElementReferenceException:
        return ""


def test_in_a_browser_bob_reviews_modifies_and_approves_and_the_page_shows_the_run_finish(
    stack, chrome
):
    from selenium.webdriver.common.by import By

    run = start(stack)
    plan_hash = json.loads(qlrf("status", run, "--format", "json", env=stack["env"]).stdout)[
        "plan_hash"
    ]
    _browser_sign_in(chrome, stack, "bob@example.com")
    assert chrome.current_url == stack["web"].url + "/"
    inbox = chrome.find_element(By.ID, "yours").text
    assert run in inbox and "review" in inbox and "patch 4 hosts?" in inbox and "0 of 1" in inbox
    chrome.find_element(By.CSS_SELECTOR, f'#yours a.button[href*="{run}"]').click()
    eventually(lambda: _text(chrome, "gate-id") == "review", "the review page", 20)
    assert _text(chrome, "plan-hash") == plan_hash
    released = chrome.find_element(By.ID, "released-patch").text
    assert "patching {{ host }} in batches of 2" in released  # the item is known later
    blast = chrome.find_element(By.ID, "blast-patch").text
    assert "4 items" in blast and "canary 1 1\u20131" in blast and "rest 3 2\u20134" in blast
    assert '"batch": 2' in _text(chrome, "inputs")
    # Modify: a preview first, then a new round.
    chrome.find_element(By.ID, "set-batch").send_keys("3")
    chrome.find_element(By.ID, "preview").click()
    eventually(lambda: _text(chrome, "changes"), "the preview", 20)
    assert "batch 2 3" in _text(chrome, "changes")
    assert "in batches of 3" in chrome.find_element(By.ID, "preview-result").get_attribute(
        "textContent"
    )
    chrome.find_element(By.ID, "modify").click()
    eventually(lambda: _text(chrome, "round") == "2", "round 2 of the gate", 20)
    assert "modify" in _text(chrome, "rounds") and "web (" in _text(chrome, "rounds")
    # Approve: the run page follows the run to its end without a reload.
    chrome.find_element(By.ID, "comment").send_keys("ship it")
    chrome.find_element(By.ID, "approve").click()
    eventually(lambda: chrome.current_url.endswith(f"/runs/{run}"), "the run page", 20)
    chrome.execute_script("window.qlrfMark = 'same page'")
    eventually(lambda: _text(chrome, "run-status") == "succeeded", "the run succeeding", 60)
    assert chrome.execute_script("return window.qlrfMark") == "same page"
    view = json.loads(qlrf("status", run, "--format", "json", env=stack["env"]).stdout)
    (approval,) = next(g for g in view["gates"] if g["gate"] == "review")["approvals"]
    assert approval["by"] == "bob@example.com" and approval["verified"] is True
    assert approval["via"]["issuer"] == stack["issuer"] and approval["comment"] == "ship it"


def test_in_a_browser_the_starter_is_offered_no_approve_and_is_told_why(stack, chrome):
    from selenium.webdriver.common.by import By

    run = start(stack)
    _browser_sign_in(chrome, stack, "alice@example.com", f"/runs/{run}/gates/review")
    assert not chrome.find_elements(By.ID, "approve")
    assert "started this run and may not approve it" in _text(chrome, "why-not-approve")
    assert chrome.find_elements(By.ID, "reject")  # rejecting her own run is hers to do


def test_in_a_browser_hostile_text_stays_text(stack, chrome):
    from selenium.webdriver.common.by import By

    name = f"hostile-{uuid.uuid4().hex[:6]}"
    path = stack["folder"] / f"{name}.yaml"
    path.write_text(HOSTILE.format(name=name))
    env = {**stack["env"], "QLRF_SIGNING_KEY": str(stack["keys"]["alice"])}
    run = detached(path, env)
    eventually(lambda: waiting(stack, run), "the hostile gate waiting", 60)
    _browser_sign_in(chrome, stack, "bob@example.com", f"/runs/{run}")
    for page in (f"/runs/{run}", f"/runs/{run}/gates/review", "/", f"/runs/{run}/steps/speak/logs"):
        chrome.get(stack["web"].url + page)
        eventually(lambda: chrome.find_elements(By.ID, "principal"), f"page {page}", 20)
        assert not chrome.find_elements(By.CSS_SELECTOR, "main img, #bold, main script")
        assert chrome.execute_script("return window.pwned === undefined")
        assert "\x1b" not in chrome.page_source
    chrome.get(stack["web"].url + f"/runs/{run}/gates/review")
    assert "<img src=x" in _text(chrome, "gate-message")
    assert "<script>" in _text(chrome, "gate-message")
    chrome.get(stack["web"].url + f"/runs/{run}")
    eventually(
        lambda: "<b id=bold>loud</b>" in _text(chrome, "steps"),
        lambda: f"the output as text: {_text(chrome, 'steps')!r}",
        20,
    )
    chrome.get(stack["web"].url + f"/runs/{run}/steps/speak/logs")
    assert "<b id=bold>loud</b> ␛[31mred <img src=x id=img2>" in _text(chrome, "stdout")


def test_two_replicas_serve_one_session_and_each_limits_a_persons_decisions(stack):
    run = start(stack)
    extra = {**stack["web_env"], "QLRF_WEB_DECISIONS_PER_MINUTE": "2"}
    second = Served(extra, stack["folder"] / "serve-2.log")
    try:
        _, cookie = _sign_in(stack, "bob@example.com")  # on the first replica
        page = httpx.get(f"{second.url}/runs/{run}/gates/review", headers={"Cookie": cookie})
        assert page.status_code == 200 and "bob@example.com" in page.text
        token = tokens(stack["issuer"], "erin@example.com")["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        said = [
            httpx.post(
                f"{second.url}{decide_url(run, 'nope')}",
                json={"decision": "reject"},
                headers=headers,
                timeout=30,
            )
            for _ in range(3)
        ]
        assert [a.status_code for a in said] == [404, 404, 429]
        assert said[2].headers["content-type"].startswith("application/problem+json")
        metrics = httpx.get(f"{second.url}/metrics").text
        assert 'route="/api/v1/runs/{run}/gates/{gate:path}/decisions"' in metrics
        assert "qlrf_web_request_seconds_bucket" in metrics
    finally:
        second.stop()


def test_local_sign_in_is_unverified_and_a_signed_run_offers_it_no_button(stack):
    run = start(stack)
    env = {k: v for k, v in stack["web_env"].items() if not k.startswith("QLRF_WEB_")}
    local = Served(env, stack["folder"] / "serve-local.log")
    try:
        form = httpx.get(f"{local.url}/login")
        assert form.status_code == 200 and 'name="name"' in form.text
        answer = httpx.post(
            f"{local.url}/login", data={"name": "bob@example.com", "next": "//evil"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"].split(";")[0]
        page = httpx.get(f"{local.url}/runs/{run}/gates/review", headers={"Cookie": cookie})
        assert page.status_code == 200
        assert "unverified" in page.text and 'id="approve"' not in page.text
        assert "this run is in signed mode" in page.text
        bearer = httpx.get(f"{local.url}/api/v1/runs", headers={"Authorization": "Bearer x"})
        assert bearer.status_code == 401
    finally:
        local.stop()


def test_the_identity_provider_down_gives_a_page_that_says_so(stack):
    with provider() as issuer:
        env = {**stack["web_env"], "QLRF_WEB_OIDC_ISSUER": issuer}
        served = Served(env, stack["folder"] / "serve-down.log")
    try:
        page = httpx.get(f"{served.url}/login?next=/")
        assert page.status_code == 503 and "does not answer" in page.text
        assert "Traceback" not in page.text and "Traceback" not in served.said()
        api_answer = httpx.get(f"{served.url}/api/v1/runs", headers={"Authorization": "Bearer a.b"})
        assert api_answer.status_code in (401, 503)
    finally:
        served.stop()


WAVED = """\
apiVersion: qlrf/v1
kind: Campaign
name: {name}
steps:
  - id: patch
    type: shell
    foreach: [web-1, web-2, web-3]
    as: host
    waves:
      - {{name: canary, size: 1}}
      - {{name: rest, size: 100%, approval: true, approvers: [bob@example.com]}}
    with: {{command: [echo, "{{{{ host }}}}"]}}
"""


def test_a_wave_gate_is_reviewed_and_decided_by_its_step_and_wave(stack):
    name = f"waved-{uuid.uuid4().hex[:6]}"
    path = stack["folder"] / f"{name}.yaml"
    path.write_text(WAVED.format(name=name))
    env = {**stack["env"], "QLRF_SIGNING_KEY": str(stack["keys"]["alice"])}
    run = detached(path, env)

    def wave_gate() -> bool:
        found = qlrf("status", run, "--format", "json", env=stack["env"])
        return found.returncode == 0 and any(
            g["gate"] == "patch/rest" and g["status"] == "waiting"
            for g in json.loads(found.stdout)["gates"]
        )

    eventually(wave_gate, "the wave gate patch/rest waiting", 60)
    http, cookie = _sign_in(stack, "bob@example.com")
    page = http.get(f"{stack['web'].url}/runs/{run}/gates/patch/rest", headers={"Cookie": cookie})
    assert page.status_code == 200
    assert "The wave <strong>rest</strong>" in page.text and 'id="approve"' in page.text
    token = tokens(stack["issuer"], "bob@example.com")["id_token"]
    answer = api(stack, "POST", decide_url(run, "patch/rest"), token, json={"decision": "approve"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["approvals"][0]["by"] == "bob@example.com"


def test_temporal_down_gives_503_pages_and_problems_and_the_service_stays_up(stack):
    from runner.local.temporal import free_port

    env = {k: v for k, v in stack["web_env"].items() if not k.startswith("QLRF_WEB_")}
    env["QLRF_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    down = Served(env, stack["folder"] / "serve-no-temporal.log")
    try:
        signed_in = httpx.post(f"{down.url}/login", data={"name": "bob", "next": "/"})
        cookie = signed_in.headers["set-cookie"].split(";")[0]
        page = httpx.get(f"{down.url}/", headers={"Cookie": cookie}, timeout=30)
        assert page.status_code == 503 and "cannot reach Temporal" in page.text
        assert httpx.get(f"{down.url}/readyz", timeout=30).status_code == 503
        assert httpx.get(f"{down.url}/healthz").status_code == 200
        assert "Traceback" not in down.said() and "Deprecat" not in down.said()
    finally:
        down.stop()


def _status(stack: dict[str, Any], run: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        qlrf("status", run, "--format", "json", env=stack["env"]).stdout
    )
    return found


def test_the_api_starts_a_library_runbook_under_the_policy(stack):
    body = {"runbook": "failover.yaml", "inputs": {"region": "us"}}
    alice = tokens(stack["issuer"], "alice@example.com")["access_token"]
    refused = api(stack, "POST", "/api/v1/runs", alice, json=body)
    assert refused.status_code == 403, refused.text
    assert (
        "policy rule 0 (kind: Drill, labels: {env: prod}) lets group:oncall start"
        in (refused.json()["detail"])
    )
    hostile = api(stack, "POST", "/api/v1/runs", alice, json={"runbook": "../policy.yaml"})
    assert hostile.status_code == 404
    bob = tokens(stack["issuer"], "bob@example.com")["access_token"]
    answer = api(stack, "POST", "/api/v1/runs", bob, json={**body, "inputs": {"region": "mars"}})
    assert answer.status_code == 422 and "region" in answer.json()["detail"]
    answer = api(stack, "POST", "/api/v1/runs", bob, json=body)
    assert answer.status_code == 201, answer.text
    run = answer.json()["run_id"]
    eventually(lambda: _status(stack, run)["status"] == "succeeded", "the drill succeeding", 60)
    state = _status(stack, run)
    assert state["started_by"] == "bob@example.com" and state["identity"]["started_by_verified"]
    assert state["provenance"]["clean"] and state["provenance"]["path"] == "failover.yaml"
    assert state["inputs"] == {"region": "us"}


def test_a_proposal_through_the_api_is_checked_and_stopped_for_a_person(stack):
    agent = tokens(stack["issuer"], "agent@example.com")["access_token"]
    text = (
        "apiVersion: qlrf/v1\nkind: Task\nname: agent-fix\nsteps:\n"
        "  - id: fix\n    type: shell\n    with: {{command: [sh, -c, '{}']}}\n"
    )
    bob = tokens(stack["issuer"], "bob@example.com")["access_token"]
    person = api(stack, "POST", "/api/v1/runs", bob, json={"text": text.format("echo hi")})
    assert person.status_code == 403 and "proposals only" in person.json()["detail"]
    refused = api(stack, "POST", "/api/v1/runs", agent, json={"text": text.format("rm -rf /tmp/x")})
    assert refused.status_code == 403
    assert "policy proposals: step 'fix' runs" in refused.json()["detail"]
    answer = api(stack, "POST", "/api/v1/runs", agent, json={"text": text.format("echo fixed")})
    assert answer.status_code == 201, answer.text
    run = answer.json()["run_id"]
    eventually(
        lambda: any(g["gate"] == "policy:proposal" for g in _status(stack, run)["gates"]),
        "the proposal's gate",
        60,
    )
    assert _status(stack, run)["steps"]["fix"]["status"] == "pending"
    own = api(
        stack, "POST", decide_url(run, "policy:proposal"), agent, json={"decision": "approve"}
    )
    assert own.status_code == 409
    assert "agent@example.com may not decide gate 'policy:proposal'" in own.json()["detail"]
    bob = tokens(stack["issuer"], "bob@example.com")["access_token"]
    done = api(stack, "POST", decide_url(run, "policy:proposal"), bob, json={"decision": "approve"})
    assert done.status_code == 200, done.text
    eventually(lambda: _status(stack, run)["status"] == "succeeded", "the proposal running", 60)


def test_in_a_browser_bob_starts_a_runbook_from_the_library(stack, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _browser_sign_in(chrome, stack, "bob@example.com", "/library")
    assert "Fail the database over" in _text(chrome, "library")
    chrome.find_element(By.LINK_TEXT, "Start").click()
    eventually(lambda: _text(chrome, "provenance").startswith("From"), "the start form", 20)
    assert "(clean)" in _text(chrome, "provenance")
    Select(chrome.find_element(By.ID, "input-region")).select_by_value("us")
    chrome.find_element(By.ID, "start").click()
    eventually(lambda: "/runs/" in chrome.current_url, "the run's page", 30)
    eventually(lambda: _text(chrome, "run-status") == "succeeded", "the run finishing", 60)
    assert "failover.yaml" in _text(chrome, "provenance")
    assert "policy rule 0" in _text(chrome, "policy")
