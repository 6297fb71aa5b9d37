"""Where qlrf-run keeps its files on this machine: the embedded defaults' state in
$XDG_STATE_HOME/qlrf-run (~/.local/state), the operator's configuration in
$XDG_CONFIG_HOME/qlrf-run (~/.config)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "qlrf-run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_path() -> Path:
    """The operator's configuration file (runner/config.py)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qlrf-run" / "config.yaml"
