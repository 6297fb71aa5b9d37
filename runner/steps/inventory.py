"""The activities behind `foreach: {from_file: PATH, format: ...}`.

`inventory_open` reads the file once, as the fan-out starts, and answers only its
size, its sha256 and whether its items have names: the run never holds the items.
Each batch then asks `inventory_page` for its own items, at most 1,000. A page is
cut from the same bytes the run opened: the worker keeps the parsed file, and one
that reads it afresh (another worker, or after a restart) checks its sha256, so a
file changed during the run fails the batch with InventoryChanged rather than
running other items than those counted.

A redrive of a fan-out from a file leaves out the items that succeeded in the run
it redrives, read from the run store here, on the worker: the run's input does not
carry 100,000 names either.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.contract import INVENTORY_OPEN_ACTIVITY, INVENTORY_PAGE_ACTIVITY
from runner.plan.waves import item_names, names_items
from runner.steps.inventory_file import InventoryError, load

# Parsed inventories this worker keeps, by (path, format, sha256, redrive_of, step):
# a page is then a slice. Few: a worker runs few huge fan-outs at once.
_KEPT: OrderedDict[tuple[str, ...], list[Any]] = OrderedDict()
KEEP = 4
PAGE_ITEMS = 1000


def _refuse(kind: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=kind != "InventoryStore")


async def _items(request: dict[str, Any], sha256: str | None) -> tuple[str, list[Any]]:
    """The inventory's (filtered) items and the sha256 of the bytes they came from."""
    path, fmt = str(request["path"]), str(request.get("format") or "lines")
    redrive_of, step = str(request.get("redrive_of") or ""), str(request.get("step") or "")
    if sha256 is not None:
        found = _KEPT.get((path, fmt, sha256, redrive_of, step))
        if found is not None:
            _KEPT.move_to_end((path, fmt, sha256, redrive_of, step))
            return sha256, found
    try:
        inventory = await asyncio.to_thread(load, path, fmt)
    except InventoryError as exc:
        raise _refuse(exc.kind, str(exc)) from None
    if sha256 is not None and inventory.sha256 != sha256:
        raise _refuse(
            "InventoryChanged",
            f"inventory file {inventory.path} changed during the run (sha256 "
            f"{inventory.sha256[:12]}, the run opened {sha256[:12]}); keep an inventory "
            "unchanged while a run uses it, and redrive the run",
        )
    items = inventory.items
    if redrive_of:
        done = await _succeeded(redrive_of, step)
        items = [item for item in items if not item_names(item) & done]
    key = (path, fmt, inventory.sha256, redrive_of, step)
    _KEPT[key] = items
    while len(_KEPT) > KEEP:
        _KEPT.popitem(last=False)
    return inventory.sha256, items


async def _succeeded(run: str, step: str) -> set[str]:
    """The items of `step` that succeeded in `run`, by the run store."""
    from runner.store.activity import pool
    from runner.store.records import succeeded_items

    try:
        return await succeeded_items(await pool(), run, step)
    except Exception as exc:  # the store is down: the activity is retried
        raise _refuse(
            "InventoryStore", f"cannot read the items run {run} finished: {exc}"
        ) from None


@activity.defn(name=INVENTORY_OPEN_ACTIVITY)
async def inventory_open(request: dict[str, Any]) -> dict[str, Any]:
    """{count, sha256, named} of the inventory `request` names ({path, format,
    redrive_of, step})."""
    sha256, items = await _items(request, None)
    return {"count": len(items), "sha256": sha256, "named": names_items(items)}


@activity.defn(name=INVENTORY_PAGE_ACTIVITY)
async def inventory_page(request: dict[str, Any]) -> dict[str, Any]:
    """{items}: items [start, end) of the inventory the run opened (`sha256`)."""
    start, end = int(request["start"]), int(request["end"])
    if not 0 <= start <= end or end - start > PAGE_ITEMS:
        raise _refuse("InventoryInvalid", f"page {start}-{end} is not one this worker serves")
    _, items = await _items(request, str(request["sha256"]))
    if end > len(items):
        raise _refuse(
            "InventoryChanged",
            f"the inventory has {len(items)} items, fewer than the run counted ({end})",
        )
    return {"items": items[start:end]}
