"""Each activity alone, in Temporal's ActivityEnvironment (no server)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from runner.contract import StepRequest
from runner.steps import common
from runner.steps.http import http
from runner.steps.notify import notify
from runner.steps.shell import shell
from tests.helpers.waiting import eventually


def _run(fn, params, script_env=None):
    return asyncio.run(
        ActivityEnvironment().run(fn, StepRequest("run-1", "s", params, script_env or {}))
    )


def test_shell_command_output_and_json():
    """stdout, stderr, exit code, and stdout parsed as JSON."""
    result = _run(
        shell, {"command": ["sh", "-c", "echo '{\"a\": 1}'; echo warn >&2"], "parse": "json"}
    )
    output = result["output"]
    assert output == {"exit_code": 0, "stdout": '{"a": 1}\n', "stderr": "warn\n", "json": {"a": 1}}
    assert result["attempt"] == 1


def test_shell_script_reads_template_values_from_the_environment():
    """A script's ${QLRF_ARG_n} carries the rendered value verbatim."""
    result = _run(
        shell, {"script": 'printf "%s" "${QLRF_ARG_0}"'}, {"QLRF_ARG_0": "$(rm -rf /); `id`"}
    )
    assert result["output"]["stdout"] == "$(rm -rf /); `id`"


def test_shell_failures_have_stable_types():
    """A non-zero exit is CommandFailed with the stderr tail; a missing program CommandNotFound."""
    with pytest.raises(ApplicationError) as failed:
        _run(shell, {"command": ["sh", "-c", "echo boom >&2; exit 7"]})
    assert failed.value.type == "CommandFailed"
    assert failed.value.message == "exit code 7: boom"
    assert failed.value.details[0]["exit_code"] == 7
    with pytest.raises(ApplicationError) as missing:
        _run(shell, {"command": ["/no/such/tool"]})
    assert missing.value.type == "CommandNotFound"


def test_shell_output_is_capped_keeping_the_tail():
    """Large output keeps its last bytes and says how much was cut."""
    result = _run(shell, {"command": ["python3", "-c", "print('a' * 200000 + 'THE-END')"]})
    stdout = result["output"]["stdout"]
    assert stdout.endswith("THE-END\n")
    assert stdout.startswith("[... ") and len(stdout) < common.OUTPUT_CAP + 100


def test_shell_cancel_kills_the_process_group(tmp_path):
    """Cancelling the activity terminates the command and the children it started."""
    import uuid

    from tests.helpers.processes import running

    pids = tmp_path / "pids"
    env = ActivityEnvironment()
    duration = f"300.{uuid.uuid4().int % 10**9}"  # marks the sleep as this test's

    async def go():
        task = asyncio.ensure_future(
            env.run(
                shell,
                StepRequest("r", "s", {"script": f"sleep {duration} & echo $$ $! > {pids}; wait"}),
            )
        )
        for _ in range(200):
            if pids.exists() and len(pids.read_text().split()) == 2:
                break
            await asyncio.sleep(0.02)
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    eventually(lambda: not running(duration), "every process of the step ends", 5, poll=0.05)


def test_secrets_are_resolved_and_masked(monkeypatch):
    """The marker becomes the value inside the activity, and *** in what it returns."""
    monkeypatch.setenv("QLRF_SECRET_DB_PASS", "hunter2")
    result = _run(shell, {"command": ["echo", "pass=@@qlrf-secret:DB_PASS@@"]})
    assert result["output"]["stdout"] == "pass=***\n"


class _Handler(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_GET(self):
        code = int(self.path.strip("/") or 200)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        _Handler.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_success_and_status_classes(web):
    """2xx succeeds with JSON; 4xx is HTTPClientError; 5xx HTTPServerError; expect_status wins."""
    ok = _run(http, {"url": f"{web}/200"})
    assert ok["output"]["status"] == 200 and ok["output"]["json"] == {"path": "/200"}
    for code, kind in ((404, "HTTPClientError"), (503, "HTTPServerError")):
        with pytest.raises(ApplicationError) as failed:
            _run(http, {"url": f"{web}/{code}"})
        assert failed.value.type == kind
    assert _run(http, {"url": f"{web}/404", "expect_status": [404]})["output"]["status"] == 404
    with pytest.raises(ApplicationError) as unexpected:
        _run(http, {"url": f"{web}/200", "expect_status": [201]})
    assert unexpected.value.type == "HTTPUnexpectedStatus"


def test_http_connection_errors(web):
    """Nobody listening is HTTPConnectionError (retried by default)."""
    from runner.local.temporal import free_port

    with pytest.raises(ApplicationError) as failed:
        _run(http, {"url": f"http://127.0.0.1:{free_port()}/", "timeout": "2s"})
    assert failed.value.type == "HTTPConnectionError"


def test_notify_log_and_webhook(web, caplog):
    """The log channel logs the message; the webhook channel posts it as JSON."""
    import logging

    with caplog.at_level(logging.INFO, logger="qlrf.notify"):
        assert _run(notify, {"message": "hello"})["output"] == {"delivered": True}
    assert "hello" in caplog.text
    assert _run(notify, {"message": "paged", "channel": "webhook", "url": f"{web}/hook"})[
        "output"
    ] == {"delivered": True}
    assert _Handler.received[-1] == {"text": "paged", "run_id": "run-1", "step": "s"}


def test_gate_notification_goes_to_the_log_and_the_configured_webhook(web, caplog, monkeypatch):
    """A gate that opens is logged and POSTed to QLRF_NOTIFY_WEBHOOK with the approve command."""
    import logging

    from runner.config import notify_webhook
    from runner.steps.gate_notify import gate_notifier

    monkeypatch.setenv("QLRF_NOTIFY_WEBHOOK", f"{web}/gates")
    gate_notify = gate_notifier(notify_webhook)
    request = {
        "run": "r-1",
        "gate": "review",
        "message": "ship it?",
        "approvers": ["alice"],
        "deadline": "2026-11-26T00:00:00Z",
        "command": "qlrf-run approve r-1 review",
    }
    with caplog.at_level(logging.WARNING, logger="qlrf.gates"):
        result = asyncio.run(ActivityEnvironment().run(gate_notify, request))
    assert result == {"delivered": ["log", "webhook"]}
    assert "qlrf-run approve r-1 review" in caplog.text
    posted = _Handler.received[-1]
    assert posted["command"] == "qlrf-run approve r-1 review" and "ship it?" in posted["text"]


def test_sql_query_with_bound_parameters_and_errors(postgres_uri, monkeypatch):
    """Rows come back as objects, parameters are bound, errors have stable types."""
    from runner.steps.sql import sql

    monkeypatch.setenv("QLRF_SECRET_DB", postgres_uri)
    dsn = "@@qlrf-secret:DB@@"
    rows = _run(
        sql,
        {
            "dsn": dsn,
            "query": "select $1::int + 1 as n, $2::text as s",
            "params": [41, "x'; drop table y; --"],
        },
    )["output"]
    assert rows == {"rows": [{"n": 42, "s": "x'; drop table y; --"}], "rowcount": 1}
    _run(sql, {"dsn": dsn, "query": "create table if not exists t (v int)"})
    inserted = _run(sql, {"dsn": dsn, "query": "insert into t values (1), (2)"})
    assert inserted["output"]["rowcount"] == 2
    with pytest.raises(ApplicationError) as bad:
        _run(sql, {"dsn": dsn, "query": "select * from no_such_table"})
    assert bad.value.type == "SQLError"
    with pytest.raises(ApplicationError) as down:
        _run(sql, {"dsn": "postgresql://nobody@127.0.0.1:1/none", "query": "select 1"})
    assert down.value.type == "SQLConnectionError"
    assert postgres_uri not in str(bad.value.message)


@pytest.mark.parametrize(
    "printer",
    [
        'printf %s "$V" | base64',  # wrapped at 76 columns
        'printf %s "$V" | base64 -w 64',  # as in a PEM
        'printf %s "$V" | xxd -p',  # hex, wrapped at 60
        "printf 'x%s' \"$V\" | base64",  # at another alignment
    ],
)
def test_a_secret_wrapped_over_lines_is_masked(printer, monkeypatch):
    """A secret printed as base64 or hex that the printer wrapped over several lines is
    masked like one on a single line: no piece of its encoding is left to read."""
    import base64 as b64

    value = "long-secret-" + "k" * 90
    monkeypatch.setenv("QLRF_SECRET_LONG", value)
    request = StepRequest(
        "r", "s", {"script": printer, "env": {"V": "@@qlrf-secret:LONG@@"}},
        secret_params=[["env", "V"]], secret_env=[],
    )  # fmt: skip
    out = asyncio.run(ActivityEnvironment().run(shell, request))["output"]["stdout"]
    joined = out.replace("\n", "")
    encoded = [b64.b64encode(value.encode()).decode(), value.encode().hex()]
    for full in encoded:
        for i in range(len(full) - 12):
            assert full[i : i + 12] not in joined, (out, full[i : i + 12])
    assert "***" in out


def test_the_output_cap_never_cuts_through_a_secret(monkeypatch):
    """A secret right at the 64 KiB cap: masked before the output is cut, so no part of it
    survives the cut."""
    value = "cut-me-secret-19ch"
    monkeypatch.setenv("QLRF_SECRET_CUT", value)
    # Cut as printed, the cap would fall after the secret's 4th character and leave the
    # other 15 readable.
    tail_length = common.OUTPUT_CAP + 4
    script = f'printf %s "$V"; head -c {tail_length - len(value)} /dev/zero | tr "\\0" y'
    request = StepRequest(
        "r", "s", {"script": script, "env": {"V": "@@qlrf-secret:CUT@@"}},
        secret_params=[["env", "V"]], secret_env=[],
    )  # fmt: skip
    out = asyncio.run(ActivityEnvironment().run(shell, request))["output"]["stdout"]
    for i in range(len(value) - 6):
        assert value[i : i + 6] not in out
