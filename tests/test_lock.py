"""The worker image installs from a lock file with hashes, and the lock matches
pyproject.toml: every runtime dependency pinned to a version its range admits,
every pin with its hashes, nothing of the `embedded` extra (a dev server and a
PostgreSQL that a cluster's worker never runs). `scripts/lock` writes it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "worker.lock"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")


def _project() -> dict[str, object]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def _pins() -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes), from the lock's `name==version \\ --hash=...` entries."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in LOCK.read_text().splitlines():
        found = PIN.match(line)
        if found:
            current = canonicalize_name(found.group(1))
            pins[current] = (Version(found.group(2)), [])
        elif current and "--hash=sha256:" in line:
            pins[current][1].append(line.split("--hash=sha256:", 1)[1].split()[0])
    return pins


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    for text in dependencies:
        wanted = Requirement(text)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is in pyproject.toml but not in {LOCK.name}"
        version = pins[name][0]
        assert wanted.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {wanted.name}=={version}, outside {wanted.specifier}: "
            "run scripts/lock"
        )


def test_every_pin_has_hashes_and_no_embedded_server_is_locked() -> None:
    pins = _pins()
    assert pins, f"{LOCK} lists nothing"
    for name, (version, hashes) in pins.items():
        assert hashes and all(len(h) == 64 for h in hashes), f"{name}=={version} has no hash"
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    for text in extras["embedded"]:
        name = canonicalize_name(Requirement(text).name)
        assert name not in pins, f"{name} (the embedded extra) must stay out of the image"


def test_the_image_installs_from_the_lock_with_hashes_required() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "deploy/worker.lock" in dockerfile
    # The wheel itself is installed without its dependencies: those come from the lock.
    assert re.search(r"pip install [^\n]*--no-deps[^\n]*/wheels/", dockerfile), dockerfile
