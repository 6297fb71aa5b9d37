"""`qlrf-run test [PATH...]`: run runbooks' test cases in simulated time.

Exit 0 when every case passes, 1 when one fails, 2 for a bad test file (its
diagnostics printed as `validate` prints them) or bad usage.
"""

from __future__ import annotations

import enum
import os
import time
from pathlib import Path

import typer

from runner.cli.common import err, examples, exit_with, out
from runner.contract import STEP_ACTIVITIES
from runner.errors import UsageError

TEST_SUFFIXES = (".test.yaml", ".test.yml")
# A test runs in claimed mode on a server of its own: this machine's trust, signing
# and vault settings would sign decisions, refuse unsigned ones, or reach a vault.
_NOT_FOR_TESTS = (
    "QLRF_ALLOWED_SIGNERS",
    "QLRF_SIGNING_KEY",
    "QLRF_SECRETS_CONFIG",
    "QLRF_NOTIFY_CONFIG",
    # The policy holds in signed mode only, which a test does not run in.
    "QLRF_POLICY",
)


class TestFormat(enum.StrEnum):
    text = "text"
    json = "json"
    junit = "junit"
    github = "github"


def test_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for every NAME.test.yaml below it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.name.endswith(TEST_SUFFIXES))
            if not below:
                raise UsageError(f"{path} holds no test files (NAME.test.yaml)")
            found.extend(below)
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no file or folder {path}")
    return found


def run_tests(
    paths: list[Path] = typer.Argument(
        None, help="Test files, or folders of them (default: this folder)", show_default=False
    ),
    keyword: str | None = typer.Option(
        None, "-k", help="Only the cases whose name holds this text", show_default=False
    ),
    format: TestFormat = typer.Option(TestFormat.text, "--format", "-f", help="Output format"),
    coverage: bool = typer.Option(
        False, "--coverage", help="Report the steps, compensations, `when`s and rules exercised"
    ),
    real: list[str] = typer.Option(
        [], "--real", help="Run steps of this type with no mock for real (repeatable)"
    ),
    jobs: int = typer.Option(
        0, "--jobs", "-j", help="Cases at once, each on a test server of its own (default: CPUs)"
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the report here too (JUnit for CI, say)"
    ),
) -> None:
    """Run each case on the real interpreter in simulated time, with its steps mocked."""
    import asyncio

    from runner.cli import sdk_logging
    from runner.cli.test_report import RENDERERS, progress_line
    from runner.dsl.diagnostics import RENDERERS as DIAGNOSTICS
    from runner.dsl.diagnostics import has_errors
    from runner.observe.runtime import configure_runtime
    from runner.testing.coverage import measure
    from runner.testing.files import load_suite
    from runner.testing.session import Options, run_cases

    unknown = [t for t in real if t not in STEP_ACTIVITIES]
    if unknown:
        raise UsageError(
            f"--real {unknown[0]}: not a step type that runs as an activity; "
            f"use one of {', '.join(STEP_ACTIVITIES)}"
        )
    files = test_files(paths or [Path(".")])
    suites, problems = [], []
    for file in files:
        suite, found = load_suite(file)
        problems.append((str(file), found))
        if suite is not None:
            suites.append(suite)
    if any(has_errors(d) for _, d in problems):
        shown = DIAGNOSTICS["text" if format.value == "junit" else format.value](problems)
        (err if format == TestFormat.junit else out)(shown)
        exit_with(2)
    work = [
        (suite, case)
        for suite in suites
        for case in suite.cases
        if keyword is None or keyword.lower() in case.name.lower()
    ]
    if not work:
        raise UsageError(f"no case's name holds '{keyword}'" if keyword else "no cases to run")
    for name in _NOT_FOR_TESTS:
        os.environ.pop(name, None)
    sdk_logging.configure()
    configure_runtime()  # the SDK core's log lines go through logging, kept quiet
    options = Options(jobs=jobs or max(1, os.cpu_count() or 1), real=frozenset(real))
    began = time.monotonic()

    def report(result: object) -> None:
        if format == TestFormat.text:
            err(progress_line(result))  # type: ignore[arg-type]

    results = asyncio.run(run_cases(work, options, report))
    seconds = time.monotonic() - began
    measured = measure(results) if coverage else None
    text = RENDERERS[format.value](results, seconds, measured)
    out(text)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    exit_with(0 if all(r.passed for r in results) else 1)


def register(app: typer.Typer) -> None:
    app.command(
        "test",
        epilog=examples(
            "qlrf-run test examples/",
            "qlrf-run test drill.test.yaml -k failover --coverage",
            "qlrf-run test runbooks/ --format junit --output report.xml",
            "qlrf-run test runbooks/ --real shell   # steps with no mock run for real",
        ),
    )(run_tests)
