"""How a secret travels from the workflow to the activity: as a reference, never a value.

`{{ secrets.NAME }}` renders to a marker for NAME inside the workflow; the worker
replaces the marker with the value inside the activity. This module is the one
place that knows the marker's spelling.
"""

from __future__ import annotations

import re

PREFIX = "@@qlrf-secret:"
SUFFIX = "@@"
PATTERN = re.compile(r"@@qlrf-secret:([A-Za-z_][A-Za-z0-9_]*)@@")


def marker(name: str) -> str:
    """The reference that stands for secret NAME until an activity resolves it."""
    return f"{PREFIX}{name}{SUFFIX}"
