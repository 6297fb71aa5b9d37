"""Did-you-mean suggestions for names that are close to a known one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to `name`, when one is near enough to be a typo."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def hint(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or ''."""
    best = closest(name, known)
    return f" (did you mean '{best}'?)" if best else ""
