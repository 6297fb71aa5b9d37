"""What an editor offers with our schema, asked of the real yaml-language-server.

Uses ../shared/tools/yamlls (the engine of the VS Code YAML extension, driven over LSP).
The session installs it with its setup.sh when it is missing, instead of skipping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import ROOT

TOOL = ROOT.parent / "shared" / "tools" / "yamlls"
SCHEMA = ROOT / "schemas" / "runbook.schema.json"
BUILTINS = ["approval", "assert", "evidence", "http", "notify", "runbook", "shell", "sleep", "sql"]
HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: editor\nsteps:\n  - id: a\n"

pytestmark = pytest.mark.editor


@pytest.fixture(scope="module")
def yamlls() -> Path:
    assert shutil.which("node"), "node is required for the editor test (see .ci/run)"
    assert (TOOL / "complete.mjs").is_file(), f"the yamlls tool is missing at {TOOL}"
    setup = subprocess.run(
        ["bash", str(TOOL / "setup.sh")], capture_output=True, text=True, timeout=300
    )
    assert setup.returncode == 0, setup.stderr
    return TOOL / "complete.mjs"


def _ask(tool: Path, tmp_path: Path, text: str, *args: str) -> Any:
    doc = tmp_path / "doc.yaml"
    doc.write_text(text)
    result = subprocess.run(
        ["node", str(tool), "--schema", str(SCHEMA), "--file", str(doc), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_type_completion_offers_every_builtin_type(yamlls, tmp_path):
    """At `type: |`, the editor lists all nine built-in step types."""
    labels = _ask(yamlls, tmp_path, HEAD + "    type: <|>\n", "--marker", "<|>")
    assert sorted(labels) == BUILTINS


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
def test_with_completion_offers_only_that_types_keys(yamlls, tmp_path, step_type, own, other):
    """Under `with:`, the keys offered are those of the step's type and no other's."""
    text = HEAD + f"    type: {step_type}\n    with:\n      <|>\n"
    labels = set(_ask(yamlls, tmp_path, text, "--marker", "<|>"))
    assert own <= labels
    assert not (other & labels)


def test_unknown_key_gets_a_diagnostic_on_its_line(yamlls, tmp_path):
    """An unknown step key is flagged on the line where it is written."""
    text = HEAD + "    type: sleep\n    bogus: 1\n    with: {duration: 1s}\n"
    diagnostics = _ask(yamlls, tmp_path, text, "--diagnostics")
    flagged = [d for d in diagnostics if "bogus" in d["message"]]
    assert [d["line"] for d in flagged] == [6]  # 0-based: the seventh line
    assert flagged[0]["severity"] == "error"


def test_examples_have_no_editor_diagnostics(yamlls, tmp_path):
    """The shipped examples open clean in an editor too."""
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        text = "\n".join(path.read_text().splitlines()[1:]) + "\n"  # drop the modeline
        assert _ask(yamlls, tmp_path, text, "--diagnostics") == [], path.name
