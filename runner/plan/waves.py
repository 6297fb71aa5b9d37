"""The arithmetic of a fan-out: sizes, wave bounds, failure budgets, batches, item names.

One implementation, used by `validate` (on literal lists), the compiler and the
engine. Pure functions; docs/campaigns.md describes waves and budgets.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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

_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)%$")


@dataclass(frozen=True)
class Amount:
    """A wave size or a failure budget as written: a count, or a percentage."""

    count: int | None = None
    percent: float | None = None


def parse_amount(value: Any) -> Amount | None:
    """`5` or `"10%"` as an Amount; None for anything else (the schema reports it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Amount(count=value)
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m:
            return Amount(percent=float(m.group(1)))
    return None


def cumulative_end(total: int, size: Amount) -> int:
    """Items done by the end of a wave of this cumulative size: a percentage rounds up."""
    if size.percent is not None:
        return math.ceil(total * size.percent / 100)
    return int(size.count or 0)


def budget(size: int, amount: Amount | None) -> int | None:
    """Failures a wave of `size` items tolerates; None when there is no budget.

    A percentage is of the wave's items, rounded down: a canary of 1 tolerates none.
    """
    if amount is None:
        return None
    if amount.percent is not None:
        return math.floor(size * amount.percent / 100)
    return amount.count


class WaveSpec(Protocol):
    """What the arithmetic needs of a plan's wave (runner.plan.model.Wave)."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def size_percent(self) -> float | None: ...
    @property
    def max_failures(self) -> int | None: ...
    @property
    def max_failures_percent(self) -> float | None: ...


@dataclass(frozen=True)
class WaveBounds:
    name: str
    start: int  # index of the wave's first item
    end: int  # one past its last item
    spec: int  # which of the step's `waves` it is (-1: no `waves`, the whole list)


def bounds(total: int, waves: Sequence[WaveSpec]) -> list[WaveBounds]:
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
        else:
            end = cumulative_end(total, Amount(wave.size, wave.size_percent))
        end = min(max(end, start), total)
        if end > start:
            out.append(WaveBounds(wave.name, start, end, i))
        start = end
    return out


def wave_budget(
    first: bool,
    size: int,
    wave: WaveSpec | None,
    step_count: int | None,
    step_percent: float | None,
    *,
    first_defaults_to_zero: bool = True,
) -> int | None:
    """The failure budget of one wave of `size` items.

    A wave's own `max_failures` wins. Otherwise the step's `max_failures` applies,
    except to the first wave, whose default is 0: a canary whose only item fails
    stops the campaign unless its own entry says otherwise. (Runs started before
    per-wave budgets existed keep the step's budget on every wave.)
    """
    if wave is not None and (
        wave.max_failures is not None or wave.max_failures_percent is not None
    ):
        return budget(size, Amount(wave.max_failures, wave.max_failures_percent))
    if first and first_defaults_to_zero and wave is not None:
        return 0
    if step_count is None and step_percent is None:
        return None
    return budget(size, Amount(step_count, step_percent))


def item_key(item: Any, *, named: bool = False) -> str:
    """How an item is named in progress, errors, the run store and `qlrf-run skip`.

    Text is its own name. With `named`, a mapping with a text `name` (a host of an
    inventory) is named by it; anything else by its compact, sorted JSON."""
    if isinstance(item, str):
        return item
    if named:
        name = given_name(item)
        if name is not None:
            return name
    return json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)


def given_name(item: Any) -> str | None:
    """The `name` of a mapping item, when it has one that is text."""
    if isinstance(item, dict):
        name = item.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def item_names(item: Any) -> set[str]:
    """Every name an item may have been recorded under, by this version or earlier ones."""
    return {item_key(item), item_key(item, named=True)}


def names_items(items: list[Any]) -> bool:
    """Whether the items can be named by their `name`: mappings, each with its own."""
    names = [given_name(item) for item in items]
    found = [n for n in names if n is not None]
    return bool(found) and len(found) == len(items) and len(set(found)) == len(found)


def batches(
    sizes: list[int], *, max_items: int = BATCH_ITEMS, max_bytes: int = BATCH_BYTES
) -> list[tuple[int, int]]:
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
