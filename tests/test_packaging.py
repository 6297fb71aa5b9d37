"""The wheel carries the step-type definitions and schemas, and works outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [built] = out.glob("qlrf_run-*.whl")
    return built


def test_wheel_contains_definitions_and_schemas(wheel):
    """definitions/ and schemas/ are package data under runner/_data."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for step_type in ("shell", "http", "approval"):
        assert f"runner/_data/definitions/steps/{step_type}.yaml" in names
    assert "runner/_data/definitions/runbooks/health-check.yaml" in names
    assert "runner/_data/schemas/runbook.schema.json" in names
    assert "runner/_data/schemas/step-type.schema.json" in names


def test_installed_wheel_validates_outside_the_repository(wheel, tmp_path):
    """Installed from the wheel and run elsewhere, qlrf-run finds its own definitions."""
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    runbook = tmp_path / "elsewhere.yaml"
    runbook.write_text((ROOT / "examples" / "drill.yaml").read_text().split("\n", 1)[1])
    code = (
        "import sys, runner.resources as r; print(r.data_dir('definitions'));"
        "from runner.cli.app import main; sys.argv = ['qlrf-run', 'validate', sys.argv[1]];"
        " main()"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(runbook)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == str(target / "runner" / "_data" / "definitions")
    assert "1 file(s) valid" in result.stdout
