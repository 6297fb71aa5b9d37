"""The canonical JSON of a value: sorted keys, no spaces, UTF-8. Everything qlrf-run
hashes or signs (plans, inputs, claims, the run store's chain, evidence) is hashed
in this one form, so that the same data always gives the same bytes.

A lone surrogate (half of a UTF-16 pair, as JSON parsed from a step's output may
hold) is written as its own three bytes (`surrogatepass`) rather than refused: a
value that can be recorded can be hashed.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(value: Any) -> bytes:
    return canonical_text(value).encode("utf-8", "surrogatepass")
