"""Inventory files (`foreach: {from_file: ...}`): each format, each refusal, and pages
cut from the bytes the run opened."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from temporalio.exceptions import ApplicationError

from runner.steps import inventory as activities
from runner.steps.inventory_file import InventoryError, load


def _load(tmp_path, text: str | bytes, fmt: str, name: str = "inv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load(str(path), fmt)


def test_lines_leave_out_blanks_and_comments(tmp_path):
    found = _load(tmp_path, "# the fleet\nweb-1\n\n  web-2  \r\n#web-3\nweb-4", "lines")
    assert found.items == ["web-1", "web-2", "web-4"]
    assert len(found.sha256) == 64 and os.path.isabs(found.path)


def test_json_as_an_array_or_one_value_per_line(tmp_path):
    hosts = [{"name": "web-1", "address": "10.0.0.1"}, {"name": "web-2"}]
    assert _load(tmp_path, json.dumps(hosts), "json").items == hosts
    lines = "\n".join(json.dumps(h) for h in hosts) + "\n\n"
    assert _load(tmp_path, lines, "json").items == hosts


def test_yaml_is_a_list(tmp_path):
    assert _load(tmp_path, "- web-1\n- {name: web-2, port: 2222}\n", "yaml").items == [
        "web-1",
        {"name": "web-2", "port": 2222},
    ]
    assert _load(tmp_path, "", "yaml").items == []


@pytest.mark.parametrize(
    ("text", "fmt", "kind", "where"),
    [
        ('{"name": "a"}\n{"name": b}\n', "json", "InventoryInvalid", "line 2 column 10"),
        ('[\n  "a",\n  b\n]', "json", "InventoryInvalid", "line 3 column 3"),
        ('{"a": 1}\n[1,\n', "json", "InventoryInvalid", "line 2 column 4"),
        ("web-1\nweb\x002\n", "lines", "InventoryInvalid", "line 2: control character"),
        (b"web-1\n\xff\n", "lines", "InventoryInvalid", "line 2: not UTF-8"),
        ("- a\n- [b\n", "yaml", "InventoryInvalid", "line 3"),
        ("name: web-1\n", "yaml", "InventoryInvalid", "not a list"),
        ("- 2026-01-01\n", "yaml", "InventoryInvalid", "quote it"),
        ("x" * 2000 + "\n", "lines", "InventoryInvalid", "line 1: the item is 2,002 bytes"),
    ],
)
def test_an_invalid_file_is_refused_with_where(tmp_path, text, fmt, kind, where):
    with pytest.raises(InventoryError) as refused:
        _load(tmp_path, text, fmt)
    assert refused.value.kind == kind
    assert where in str(refused.value), str(refused.value)


def test_a_missing_unreadable_or_special_file_is_named(tmp_path):
    with pytest.raises(InventoryError) as missing:
        load(str(tmp_path / "nope.txt"), "lines")
    assert missing.value.kind == "InventoryNotFound"
    assert "nope.txt" in str(missing.value) and "on the worker" in str(missing.value)
    with pytest.raises(InventoryError) as directory:
        load(str(tmp_path), "lines")
    assert directory.value.kind == "InventoryUnreadable" and "a directory" in str(directory.value)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InventoryError) as pipe:
        load(str(fifo), "lines")  # refused, not read for ever
    assert "FIFO" in str(pipe.value)


def test_limits_name_the_variable_that_raises_them(tmp_path, monkeypatch):
    monkeypatch.setenv("QLRF_MAX_INVENTORY_ITEMS", "3")
    with pytest.raises(InventoryError) as many:
        _load(tmp_path, "a\nb\nc\nd\n", "lines")
    assert many.value.kind == "InventoryTooLarge"
    assert "4 items, over the limit of 3" in str(many.value)
    assert "QLRF_MAX_INVENTORY_ITEMS" in str(many.value)
    monkeypatch.setenv("QLRF_MAX_INVENTORY_ITEMS", "lots")
    with pytest.raises(InventoryError) as bad:
        _load(tmp_path, "a\n", "lines")
    assert bad.value.kind == "InventoryConfig"
    monkeypatch.delenv("QLRF_MAX_INVENTORY_ITEMS")
    monkeypatch.setenv("QLRF_MAX_INVENTORY_BYTES", "10")
    with pytest.raises(InventoryError) as big:
        _load(tmp_path, "web-1\nweb-2\nweb-3\n", "lines")
    assert big.value.kind == "InventoryTooLarge" and "QLRF_MAX_INVENTORY_BYTES" in str(big.value)


def test_pages_come_from_the_bytes_the_run_opened(tmp_path):
    path = tmp_path / "fleet.txt"
    path.write_text("\n".join(f"host-{i}" for i in range(2500)) + "\n")
    request = {"path": str(path), "format": "lines", "step": "s", "redrive_of": ""}
    activities._KEPT.clear()
    opened = asyncio.run(activities.inventory_open(request))
    assert (opened["count"], opened["named"]) == (2500, False)
    page = {**request, "sha256": opened["sha256"], "start": 1000, "end": 2000}
    items = asyncio.run(activities.inventory_page(page))["items"]
    assert items[0] == "host-1000" and items[-1] == "host-1999" and len(items) == 1000

    # Another worker (nothing kept) reads the file again and checks it is the same.
    activities._KEPT.clear()
    assert asyncio.run(activities.inventory_page(page))["items"] == items
    path.write_text("host-x\n")
    activities._KEPT.clear()
    with pytest.raises(ApplicationError) as changed:
        asyncio.run(activities.inventory_page(page))
    assert changed.value.type == "InventoryChanged" and changed.value.non_retryable
    with pytest.raises(ApplicationError) as too_many:
        asyncio.run(activities.inventory_page({**page, "start": 0, "end": 5000}))
    assert too_many.value.type == "InventoryInvalid"


def test_items_with_names_are_named_by_them(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps([{"name": f"web-{i}", "address": "127.0.0.1"} for i in range(3)]))
    request = {"path": str(path), "format": "json", "step": "s", "redrive_of": ""}
    assert asyncio.run(activities.inventory_open(request))["named"] is True
