"""The command line as an operator meets it: exit codes, formats, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.helpers.cli import EXE, ROOT, qlrf

INVALID = "tests/cases/invalid/unknown-need.yaml"
WARNING = "tests/cases/warnings/unused-input.yaml"


def test_validate_exit_codes():
    """0 for valid files, 1 when any file is invalid, 2 for a missing file or bad option."""
    assert qlrf("validate", "tests/runbooks/payments-dr-drill.yaml").returncode == 0
    assert qlrf("validate", "tests/runbooks/payments-dr-drill.yaml", INVALID).returncode == 1
    missing = qlrf("validate", "no/such/file.yaml")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert (
        qlrf("validate", "--format", "xml", "tests/runbooks/payments-dr-drill.yaml").returncode == 2
    )
    assert qlrf("validate").returncode == 2


def test_validate_takes_folders(tmp_path):
    """A folder stands for the YAML files below it; an empty one is a usage error."""
    result = qlrf("validate", "tests/cases/valid")
    assert result.returncode == 0 and "6 file(s) valid" in result.stdout
    assert qlrf("validate", "tests/cases/invalid").returncode == 1
    assert qlrf("validate", str(tmp_path)).returncode == 2


def test_strict_turns_warnings_into_failure():
    """Warnings pass by default and fail with --strict."""
    assert qlrf("validate", WARNING).returncode == 0
    assert qlrf("validate", "--strict", WARNING).returncode == 1


def test_validate_text_format_is_file_line_col_code_path_message():
    """The compiler-style line, with a did-you-mean."""
    result = qlrf("validate", INVALID)
    first = result.stdout.splitlines()[0]
    assert first == (
        f"{INVALID}:6:38: error[unknown-need] steps[1].needs[0]: no step 'provison' "
        "(did you mean 'provision'?); name a step of this file"
    )


def test_validate_json_format_is_the_documented_shape():
    """files[].{file, valid, diagnostics[].{severity, code, line, column, path, message}}."""
    result = qlrf("validate", "--format", "json", "tests/runbooks/payments-dr-drill.yaml", INVALID)
    data = json.loads(result.stdout)
    assert [f["valid"] for f in data["files"]] == [True, False]
    diag = data["files"][1]["diagnostics"][0]
    assert set(diag) == {"severity", "code", "line", "column", "path", "message"}
    assert (diag["line"], diag["column"], diag["path"]) == (6, 38, "steps[1].needs[0]")


def test_validate_github_format_annotates_lines():
    """GitHub Actions workflow commands, with file, line and column."""
    result = qlrf("validate", "--format", "github", INVALID)
    assert result.stdout.startswith(
        f"::error file={INVALID},line=6,col=38,title=unknown-need::steps[1].needs[0]: no step"
    )


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01\x02",
        b"\xff\xfe",
        b"[[[[",
        b"- - - -",
        b"{a: *b}",
        b"%YAML 9.9\n---\na",
        b"steps: !!binary aGVsbG8=",
        b"apiVersion: qlrf/v1\nsteps: [{id: 1, type: [x]}]\n",
    ],
)
def test_no_input_file_produces_a_traceback(tmp_path, content):
    """Garbage gets a diagnostic and exit 1, never a Python traceback."""
    path = tmp_path / "junk.yaml"
    path.write_bytes(content)
    result = qlrf("validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{path}:" in result.stdout


def test_plan_input_errors_are_usage_errors():
    """A wrong --input value exits 2 with advice; a good one is shown in the plan."""
    bad = qlrf(
        "plan", "tests/runbooks/payments-dr-drill.yaml", "--input", "rto_target_seconds=soon"
    )
    assert bad.returncode == 2
    assert "is not an integer; e.g. --input rto_target_seconds=5" in bad.stderr
    unknown = qlrf("plan", "tests/runbooks/payments-dr-drill.yaml", "--input", "regoin=eu-west-1")
    assert unknown.returncode == 2 and "did you mean 'region'" in unknown.stderr
    enum = qlrf("plan", "tests/runbooks/payments-dr-drill.yaml", "--input", "region=mars")
    assert enum.returncode == 2 and "is not one of" in enum.stderr
    good = qlrf("plan", "tests/runbooks/payments-dr-drill.yaml", "--input", "region=eu-west-1")
    assert good.returncode == 0 and 'region="eu-west-1"' in good.stdout


def test_plan_reads_an_inputs_file(tmp_path):
    """--inputs-file takes YAML; --input overrides it."""
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("region: eu-west-1\nrto_target_seconds: 60\n")
    result = qlrf(
        "plan",
        "tests/runbooks/payments-dr-drill.yaml",
        "--inputs-file",
        str(inputs),
        "--input",
        "rto_target_seconds=30",
    )
    assert result.returncode == 0, result.stderr
    assert 'region="eu-west-1"' in result.stdout and "rto_target_seconds=30" in result.stdout


def test_plan_of_an_invalid_file_prints_diagnostics_and_exits_1():
    """plan refuses an invalid file with the same diagnostics as validate."""
    result = qlrf("plan", INVALID)
    assert result.returncode == 1 and "error[unknown-need]" in result.stderr


def test_plan_notes_missing_required_inputs():
    """A required input without a value is shown, and apply's need for it is explained."""
    result = qlrf("plan", "definitions/runbooks/health-check.yaml")
    assert result.returncode == 0
    assert "target=<required, not given>" in result.stdout
    assert "apply will need --input target=VALUE" in result.stderr


@pytest.mark.parametrize("kind", ["Drill", "Campaign", "Runbook", "Task"])
def test_init_writes_a_runbook_that_validates(tmp_path, kind):
    """Every starter validates clean and carries a modeline to a schema that exists."""
    result = qlrf("init", "my-runbook", "--kind", kind, "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    target = tmp_path / "my-runbook.yaml"
    first = target.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (tmp_path / first.split("=", 1)[1]).is_file()
    check = qlrf("validate", "--strict", str(target))
    assert check.returncode == 0, check.stdout


def test_init_refuses_bad_names_and_overwrites(tmp_path):
    """A bad name or an existing file is a usage error."""
    assert qlrf("init", "Bad_Name", "--dir", str(tmp_path)).returncode == 2
    assert qlrf("init", "ok", "--dir", str(tmp_path)).returncode == 0
    again = qlrf("init", "ok", "--dir", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_inside_the_repository_points_at_the_committed_schema(tmp_path):
    """In a checkout, the modeline refers to schemas/runbook.schema.json by a relative path."""
    result = qlrf("init", "here", "--dir", "examples/.scratch")
    try:
        text = (ROOT / "examples" / ".scratch" / "here.yaml").read_text()
        assert (
            text.splitlines()[0]
            == "# yaml-language-server: $schema=../../schemas/runbook.schema.json"
        )
        assert result.returncode == 0
    finally:
        import shutil

        shutil.rmtree(ROOT / "examples" / ".scratch", ignore_errors=True)


def test_schema_prints_the_runbook_schema():
    """`qlrf-run schema` prints the same text as the committed file."""
    result = qlrf("schema")
    assert result.stdout == (ROOT / "schemas" / "runbook.schema.json").read_text()


def test_validate_does_not_import_temporal_or_asyncpg():
    """validate stays fast in pre-commit: no Temporal, PostgreSQL, HTTP client nor asyncio."""
    code = (
        "import sys\n"
        "from runner.cli.app import app\n"
        "try:\n"
        "    app(['validate', 'tests/runbooks/payments-dr-drill.yaml'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('temporalio', 'asyncpg', 'asyncio', 'httpx')))\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def test_an_inventory_too_large_for_a_payload_is_refused_before_the_run(tmp_path):
    """A 2.3 MB inventory can never travel in a run's input: apply says so and starts
    nothing (no server: the state directory stays empty)."""
    inventory = tmp_path / "inventory.json"
    hosts = [f"host-{i:07d}.example.internal.corp" for i in range(60_000)]
    inventory.write_text(json.dumps({"hosts": hosts}))
    state = tmp_path / "state"
    result = qlrf(
        "apply",
        "tests/cases/valid/fanout-waves.yaml",
        "--inputs-file",
        str(inventory),
        env={"XDG_STATE_HOME": str(state)},
    )
    assert result.returncode == 1
    assert "input 'hosts' alone is 2.3 MB" in result.stderr
    assert "split the inventory into several runs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not state.exists()


def _commands() -> list[list[str]]:
    """Every command the Typer app has, subcommands of groups (`schedule create`) too:
    read from the app itself, so a command added later is checked as well."""
    import typer.main

    from runner.cli.app import app

    def walk(command: Any, prefix: list[str]) -> list[list[str]]:
        children = getattr(command, "commands", None)
        if not children:
            return [prefix]
        return [path for name, sub in children.items() for path in walk(sub, [*prefix, name])]

    return walk(typer.main.get_command(app), [])


COMMANDS = _commands()


def test_version_and_shell_completion():
    from importlib.metadata import version

    shown = qlrf("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"qlrf-run {version('qlrf-run')}"
    top = qlrf("--help").stdout
    assert "--install-completion" in top and "--show-completion" in top
    assert "--no-color" in top and "--verbose" in top
    # The completion script is for the shell the command runs in. `; true` keeps bash
    # from exec'ing the command in its place, so bash is its parent whoever ran pytest.
    completion = subprocess.run(
        ["bash", "-c", f"{EXE} --show-completion; true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completion.returncode == 0 and "_QLRF_RUN_COMPLETE" in completion.stdout


def test_every_command_is_found():
    names = {" ".join(c) for c in COMMANDS}
    assert {"apply", "approve", "schedule create", "schedule delete", "evidence"} <= names
    assert len(names) >= 30


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_an_example_in_its_help(command):
    shown = qlrf(*command, "--help", env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    said = " ".join(command)
    assert "Examples:" in shown.stdout and f"qlrf-run {said}" in shown.stdout


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["status", "RUN"], "text|json"),
        (["list"], "text|json"),
        (["pending"], "text|json"),
        (["history", "RUN"], "text|json"),
        (["logs", "RUN"], "text|json"),
        (["apply", "tests/runbooks/payments-dr-drill.yaml"], "text|json"),
        (["evidence", "RUN"], "json|md"),
        (["plan", "tests/runbooks/payments-dr-drill.yaml"], "text|json|mermaid"),
        (["validate", "tests/runbooks/payments-dr-drill.yaml"], "text|json|github"),
    ],
)
def test_every_format_lists_and_checks_its_choices(args, choices):
    """--help lists the choices; an unknown one is a usage error naming them (never
    silently ignored)."""
    shown = qlrf(args[0], "--help", env={"COLUMNS": "200"})
    assert choices in shown.stdout
    wrong = qlrf(*args, "--format", "yaml")
    assert wrong.returncode == 2
    assert "yaml" in wrong.stderr and all(c in wrong.stderr for c in choices.split("|"))


def test_exit_codes_are_only_0_1_2():
    """Usage errors are 2, never another code, and never a traceback."""
    for args in (["nonsense"], ["status"], ["list", "--state", "bogus"], ["set", "r", "s"]):
        result = qlrf(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
