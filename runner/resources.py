"""Where the shipped data (step-type definitions, schemas) lives.

In a wheel they are package data under runner/_data; in a source checkout
(including an editable install) they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder `definitions` or `schemas`, installed or in the checkout."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"qlrf-run is installed without its '{name}' folder")


def repo_root() -> Path | None:
    """The source checkout this package runs from, if any (for `schema --check`)."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "schemas").is_dir() else None
