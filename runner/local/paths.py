"""Where the embedded defaults keep their state: $XDG_STATE_HOME/qlrf-run (~/.local/state)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "qlrf-run"
    path.mkdir(parents=True, exist_ok=True)
    return path
