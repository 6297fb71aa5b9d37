"""What an editor offers and underlines with our schema, asked of the real
yaml-language-server (the engine of the VS Code YAML extension) over LSP.

The server is pinned in tests/editor/package.json; scripts/dev-setup installs it. The
client is tests/helpers/yamlls.py. A missing node or server fails these tests: they
never skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import yamlls
from tests.helpers.cli import ROOT, qlrf

SCHEMA = ROOT / "schemas" / "runbook.schema.json"
BUILTINS = [
    "approval",
    "assert",
    "evidence",
    "http",
    "notify",
    "runbook",
    "shell",
    "sleep",
    "sql",
    "ssh",
]
HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: editor\nsteps:\n  - id: a\n"

pytestmark = pytest.mark.editor


@pytest.fixture(scope="module", autouse=True)
def server_installed() -> None:
    problem = yamlls.missing()
    assert problem is None, problem


def test_type_completion_offers_every_builtin_type(tmp_path):
    """At `type: |`, the editor lists all ten built-in step types."""
    labels = yamlls.completions(SCHEMA, tmp_path / "doc.yaml", HEAD + "    type: <|>\n")
    assert labels == BUILTINS


@pytest.mark.parametrize(
    ("step_type", "own", "other"),
    [
        (
            "http",
            {"url", "method", "headers", "json", "body", "expect_status", "timeout"},
            {"command", "script", "cwd"},
        ),
        ("shell", {"command", "script", "env", "cwd", "parse"}, {"url", "method", "expect_status"}),
    ],
)
def test_with_completion_offers_only_that_types_keys(tmp_path, step_type, own, other):
    """Under `with:`, the keys offered are those of the step's type and no other's."""
    text = HEAD + f"    type: {step_type}\n    with:\n      <|>\n"
    labels = set(yamlls.completions(SCHEMA, tmp_path / "doc.yaml", text))
    assert own <= labels
    assert not (other & labels)


def test_unknown_key_gets_a_diagnostic_on_its_line(tmp_path):
    """An unknown step key is flagged on the line where it is written."""
    text = HEAD + "    type: sleep\n    bogus: 1\n    with: {duration: 1s}\n"
    found = yamlls.diagnostics(SCHEMA, tmp_path / "doc.yaml", text)
    flagged = [d for d in found if "bogus" in d.message]
    assert [d.line for d in flagged] == [6]  # 0-based: the seventh line
    assert flagged[0].severity == "error"


def test_examples_have_no_editor_diagnostics(tmp_path):
    """The shipped examples open clean in an editor too."""
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        text = "\n".join(path.read_text().splitlines()[1:]) + "\n"  # drop the modeline
        assert yamlls.diagnostics(SCHEMA, tmp_path / "doc.yaml", text) == [], path.name


BAD = """\
apiVersion: qlrf/v1
kind: Runbook
name: Payments_DR
timeout: 2 hours
steps:
  - id: Provision
    type: shell
    with: {command: [ls]}
  - id: typo
    type: shel
    with: {command: [ls]}
  - id: both
    type: shell
    with:
      command: [ls]
      script: ls
  - id: nap
    type: sleep
    with: {duration: 30m1h}
"""
# For each bad line (1-based, as `validate` counts): words the editor's message must
# hold, naming the fix rather than quoting a regular expression or a schema's insides.
EXPECTED = {
    3: ["lowercase letters, digits and '-'"],  # name
    4: ["not a duration", "1h30m"],  # timeout
    6: ["start with a lowercase letter"],  # step id
    10: ["unknown step type", "shell", "sleep"],  # type: shel
    16: ["either command", "or script", "not both"],  # command and script
    19: ["not a duration", "1h30m"],  # with.duration
}


def test_editor_diagnostics_name_the_fix_like_validate(tmp_path):
    """The same bad file in the editor and in `validate`: both flag each bad line, and
    the editor's message says what to write, never a regular expression."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = qlrf("validate", str(bad), "--format", "json")
    assert result.returncode == 1
    by_validate = {d["line"] for d in json.loads(result.stdout)["files"][0]["diagnostics"]}
    # For command and script, validate flags `with:` (line 14), the editor the key.
    assert set(EXPECTED) - {16} <= by_validate and 14 in by_validate

    found = yamlls.diagnostics(SCHEMA, tmp_path / "doc.yaml", BAD)
    by_line: dict[int, list[str]] = {}
    for d in found:
        by_line.setdefault(d.line + 1, []).append(d.message)
    for line, words in EXPECTED.items():
        messages = " | ".join(by_line.get(line, []))
        for word in words:
            assert word in messages, f"line {line}: {word!r} not in {messages!r}"
    everything = " ".join(d.message for d in found)
    assert "^" not in everything and "pattern" not in everything, everything
    assert "Matches a schema that is not allowed" not in everything


def test_type_values_carry_descriptions(tmp_path):
    """Each step type offered at `type:` comes with its description (enumDescriptions)."""
    schema = json.loads(SCHEMA.read_text())
    chosen = schema["definitions"]["step"]["properties"]["type"]
    described = dict(zip(chosen["enum"], chosen["enumDescriptions"], strict=True))
    assert set(described) == set(BUILTINS)
    assert all(len(text) > 10 for text in described.values())


def test_the_editor_client_lives_in_the_repository():
    """The suite needs nothing outside the repository: the client and the pinned server."""
    assert Path(yamlls.__file__).resolve().is_relative_to(ROOT)
    package = json.loads((ROOT / "tests" / "editor" / "package.json").read_text())
    assert package["dependencies"]["yaml-language-server"] == "1.25.0"
    assert (ROOT / "tests" / "editor" / "package-lock.json").is_file()


TEST_HEAD = "apiVersion: qlrf/v1\nkind: Test\nrunbook: drill.yaml\ncases:\n  - name: a\n"


def test_kind_offers_test_files_too(tmp_path):
    labels = yamlls.completions(SCHEMA, tmp_path / "doc.yaml", "apiVersion: qlrf/v1\nkind: <|>\n")
    assert labels == ["Campaign", "Drill", "Runbook", "Task", "Test"]


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("    <|>\n", {"inputs", "mocks", "decisions", "controls", "expect", "started_by"}),
        ("    mocks:\n      s:\n        <|>\n", {"output", "fail", "times", "then", "items"}),
        (
            "    expect:\n      outputs:\n        x:\n          <|>\n",
            {"eq", "lt", "le", "gt", "ge", "contains", "matches"},
        ),
        ("    expect:\n      <|>\n", {"status", "steps", "compensated", "outputs", "audit"}),
    ],
)
def test_a_test_file_completes_like_a_runbook(tmp_path, text, wanted):
    """kind: Test selects the test file's part of the schema: its keys are offered."""
    labels = set(yamlls.completions(SCHEMA, tmp_path / "doc.test.yaml", TEST_HEAD + text))
    assert wanted <= labels
    assert "steps" not in labels or "expect" in text  # not the runbook's keys


def test_an_unknown_key_in_a_test_file_is_flagged(tmp_path):
    text = TEST_HEAD + "    bogus: 1\n    expect: {status: failed}\n"
    found = yamlls.diagnostics(SCHEMA, tmp_path / "doc.test.yaml", text)
    assert [d.line for d in found if "bogus" in d.message] == [5]
