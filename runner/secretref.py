"""How a secret travels from the workflow to the activity: as a reference, never a value.

`{{ secrets.NAME }}` renders to a marker for NAME inside the workflow; the worker
replaces the marker with the value inside the activity. This module is the one
place that knows the marker's spelling.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

PREFIX = "@@qlrf-secret:"
SUFFIX = "@@"
# The name, and the field of a dynamic secret (`secrets.pg.username`) if one is named.
PATTERN = re.compile(r"@@qlrf-secret:([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_-]+))?@@")
FIELD = re.compile(r"^[A-Za-z0-9_-]+$")


def marker(name: str, field: str | None = None) -> str:
    """The reference that stands for secret NAME (or one FIELD of it) until an activity
    resolves it."""
    return f"{PREFIX}{name}.{field}{SUFFIX}" if field else f"{PREFIX}{name}{SUFFIX}"


class SecretRef(str):
    """What `secrets.NAME` gives a template: the reference, which a template may index
    for one field of a dynamic secret (`secrets.NAME.FIELD`, `secrets.NAME['FIELD']`)."""

    __slots__ = ("_asked", "secret")
    secret: str
    _asked: Counter[str] | None

    def __new__(cls, name: str, asked: Counter[str] | None = None) -> SecretRef:
        made = super().__new__(cls, marker(name))
        made.secret = name
        made._asked = asked
        return made

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # A copy (dataclasses.asdict deep-copies a step's parameters) or a pickle is
        # the plain reference text: rebuilt through __new__ it would wrap itself.
        return (str, (str(self),))

    def field(self, field: str) -> str | None:
        """The reference to one field; None for a name that cannot be a field. What a
        template asked for becomes that field, not the whole secret: a value rendered
        into it may hold a reference to that field only."""
        if not FIELD.match(field):
            return None
        if self._asked is not None:
            self._asked[self.secret] -= 1
            self._asked[f"{self.secret}.{field}"] += 1
        return marker(self.secret, field)


def references(value: Any) -> Iterator[re.Match[str]]:
    """Every reference inside `value` (text, lists, mappings), as PATTERN matches."""
    if isinstance(value, str):
        yield from PATTERN.finditer(value)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)


def key(match: re.Match[str]) -> str:
    """`NAME` or `NAME.FIELD`: what one reference (a PATTERN match) stands for."""
    return f"{match.group(1)}.{match.group(2)}" if match.group(2) else match.group(1)
