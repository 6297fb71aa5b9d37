"""The arithmetic of a fan-out: wave bounds, failure budgets, batches, item names.

Pure functions, used by the workflow (through Temporal's passthrough) and tested
on their own. DESIGN.md "Fan-out over a fleet" is the specification.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

# A batch is one child workflow. At about 3.4 history events per parallel activity,
# 1,000 items keep a child near 3,500 events, well under the 10,240-event warning,
# and under Temporal's 2,000 pending activities whatever the concurrency.
BATCH_ITEMS = 1000
BATCH_BYTES = 1_000_000  # a child's input stays far below the 2 MiB payload limit
# The step's output lists every item up to this many; beyond, only the failed ones.
OUTPUT_ITEMS = 1000
# Items named in a FailureBudgetExceeded message; the output lists all of them.
NAMED_IN_ERROR = 20
# A fan-out's concurrency may never reach Temporal's 2,000 pending activities.
MAX_CONCURRENCY = 1000


@dataclass(frozen=True)
class WaveBounds:
    name: str
    start: int  # index of the wave's first item
    end: int  # one past its last item
    spec: int  # which of the step's `waves` it is (-1: no `waves`, the whole list)


def bounds(total: int, waves: list[dict[str, Any]]) -> list[WaveBounds]:
    """Cut a list of `total` items into waves by cumulative sizes.

    A size is a count or a percentage of the list, rounded up; the last wave always
    reaches the end of the list. A wave that would hold no item (a short list) is
    left out, so a 3-item list with `1, 10%, 100%` gives waves of 1 and 2.
    """
    if not waves:
        return [WaveBounds("all", 0, total, -1)] if total else []
    out: list[WaveBounds] = []
    start = 0
    for i, wave in enumerate(waves):
        if i == len(waves) - 1:
            end = total
        elif wave.get("size_percent") is not None:
            end = math.ceil(total * float(wave["size_percent"]) / 100)
        else:
            end = int(wave["size"] or 0)
        end = min(max(end, start), total)
        if end > start:
            out.append(WaveBounds(str(wave["name"]), start, end, i))
        start = end
    return out


def budget(size: int, count: int | None, percent: float | None) -> int | None:
    """Failures a wave of `size` items tolerates; None when there is no budget.

    A percentage is of the wave's items, rounded down: a canary of 1 tolerates none.
    """
    if percent is not None:
        return math.floor(size * percent / 100)
    return count


def item_key(item: Any) -> str:
    """How an item is named in progress, errors, the run store and `qlrf-run skip`."""
    if isinstance(item, str):
        return item
    return json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)


def batches(sizes: list[int], *, max_items: int = BATCH_ITEMS, max_bytes: int = BATCH_BYTES):
    """Split consecutive items, given each one's payload size, into (start, end) batches."""
    out: list[tuple[int, int]] = []
    start = 0
    used = 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_items or used + size > max_bytes):
            out.append((start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        out.append((start, len(sizes)))
    return out
