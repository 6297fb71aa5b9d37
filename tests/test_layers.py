"""The import layers of runner/ hold, and a back-edge would be caught (import-linter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.cli import ROOT

LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [LINT, "--config", str(config), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_contract_is_kept():
    """pyproject's [tool.importlinter] contract passes on the code as it is."""
    result = _lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_back_edge_breaks_the_contract(tmp_path):
    """The engine importing the worker's composition root is reported, with the path."""
    copy = tmp_path / "runner"
    shutil.copytree(ROOT / "runner", copy, ignore=shutil.ignore_patterns("__pycache__"))
    scheduler = copy / "engine" / "scheduler.py"
    scheduler.write_text(scheduler.read_text() + "\nfrom runner import worker  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = _lint(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "runner.engine.scheduler -> runner.worker" in result.stdout


def test_the_docs_show_the_layers_as_they_are():
    """docs/engine.md's copy of the layers is pyproject's, and every package of runner/
    is in one of them (a package left out is not checked at all)."""
    import tomllib

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = contract["contracts"][0]["layers"]
    shown = "\n".join(layer.replace("runner.", "") for layer in layers)
    assert f"```\n{shown}\n```" in (ROOT / "docs" / "engine.md").read_text()
    named = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    modules = {
        f"runner.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "runner").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert modules <= named, sorted(modules - named)
