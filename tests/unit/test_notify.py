"""The notification configuration's errors, the messages' words, and the validate
warning on a channel the configuration here does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.dsl.definitions import default_registry
from runner.dsl.validate import Validator
from runner.notify import config, slack
from runner.notify.messages import Notice

GOOD = """\
channels:
  ops-slack: {kind: slack, token: secret:slack_bot_token, channel: "#ops"}
  cab-email:
    {kind: email, smtp: smtp.example.com:587, from: qlrf@example.com, to: [cab@example.com]}
routes:
  - {on: [gate_waiting, run_failed], to: [ops-slack, cab-email]}
  - {on: [gate_waiting], to: [cab-email]}
"""


def _load(tmp_path: Path, text: str, missing: object = None) -> config.NotifyConfig | None:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    return config.load(str(path), missing_secret=missing)


def _error(tmp_path: Path, text: str, missing: object = None) -> str:
    with pytest.raises(config.NotifyConfigError) as caught:
        _load(tmp_path, text, missing)
    return str(caught.value)


def test_a_good_configuration_gives_each_event_its_channels_once(tmp_path):
    found = _load(tmp_path, GOOD, lambda name: None)
    assert found is not None
    assert found.routed() == {
        "gate_waiting": ["ops-slack", "cab-email"],
        "run_failed": ["ops-slack", "cab-email"],
    }
    snapshot = found.snapshot()
    assert "secret" not in json.dumps(snapshot) and snapshot["lock_notify_after_ms"] == 600_000


def test_an_unknown_kind_is_named_with_its_line(tmp_path):
    text = GOOD.replace("kind: slack", "kind: telegram")
    said = _error(tmp_path, text)
    assert "notify.yaml:2:" in said and "telegram" in said and "slack" in said


def test_a_missing_secret_names_the_key(tmp_path):
    said = _error(tmp_path, GOOD, lambda name: f"secret '{name}' is not set on this worker")
    assert "notify.yaml:2:" in said and "secret 'slack_bot_token' is not set" in said


def test_a_credential_given_as_its_value_is_refused(tmp_path):
    said = _error(tmp_path, GOOD.replace("secret:slack_bot_token", "xoxb-123"))
    assert "credentials are secret references: secret:NAME" in said


def test_a_malformed_address_and_server_are_named(tmp_path):
    text = GOOD.replace("to: [cab@example.com]", "to: ['cab@example.com\\r\\nBcc: x@evil']")
    assert "is not an e-mail address" in _error(tmp_path, text)
    text = GOOD.replace("smtp.example.com:587", "smtp.example.com")
    assert "give the SMTP server as host:port" in _error(tmp_path, text)


def test_a_route_to_an_undefined_channel_is_named_with_a_suggestion(tmp_path):
    said = _error(tmp_path, GOOD.replace("to: [cab-email]", "to: [cab-emial]"))
    assert "notify.yaml:7:" in said and "did you mean 'cab-email'" in said


def test_slack_markup_in_a_message_stays_text_and_decided_messages_lose_their_buttons():
    notice = Notice(
        "gate_waiting",
        "r-1",
        {"gate": "review", "message": "<!channel> <https://evil|click> & go", "approvers": []},
    )
    shown = json.dumps(slack.blocks(notice))
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown and "&amp; go" in shown
    assert slack.APPROVE in shown and slack.REJECT in shown
    assert slack.APPROVE not in json.dumps(slack.blocks(notice, decided="bob approved"))
    assert json.loads(slack.button_value(notice)) == {"run": "r-1", "gate": "review", "round": 0}


RUNBOOK = """\
apiVersion: qlrf/v1
kind: Runbook
name: routed
notify:
  - {on: [run_failed], to: [ops-slak]}
steps:
  - id: review
    type: approval
    with: {message: go?, remind: [1h], escalate: {after: 2h, to: ["group:managers"]}}
"""


def test_validate_warns_on_a_channel_the_configuration_here_does_not_know(tmp_path, monkeypatch):
    path = tmp_path / "notify.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("QLRF_NOTIFY_CONFIG", str(path))
    checked = Validator(default_registry()).check_text(RUNBOOK, "routed.yaml")
    (warning,) = [d for d in checked.diagnostics if d.code == "unknown-channel"]
    assert warning.severity == "warning" and "did you mean 'ops-slack'" in warning.text()
    assert "not in the notification configuration here" in warning.text()
    assert not [d for d in checked.diagnostics if d.severity == "error"]
    monkeypatch.delenv("QLRF_NOTIFY_CONFIG")
    checked = Validator(default_registry()).check_text(RUNBOOK, "routed.yaml")
    assert not [d for d in checked.diagnostics if d.code == "unknown-channel"]
