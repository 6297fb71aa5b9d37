"""Who is acting: --as USER, else QLRF_USER, else the OS user."""

from __future__ import annotations

import getpass
import os


def current_user(as_user: str | None = None) -> str:
    if as_user:
        return as_user
    if os.environ.get("QLRF_USER"):
        return os.environ["QLRF_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
