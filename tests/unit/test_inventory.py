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


@pytest.fixture(autouse=True)
def inventories_here(tmp_path, monkeypatch):
    """The worker reads inventories from this test's folder only (QLRF_INVENTORY_DIRS)."""
    monkeypatch.setenv("QLRF_INVENTORY_DIRS", str(tmp_path))


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
        # Control characters and bidirectional overrides, in every format.
        ('["web-1", "web\\u001b[2Jx"]', "json", "InventoryInvalid", "item 2: control"),
        ('{"name": "web\\u202egnp.exe"}\n', "json", "InventoryInvalid", "line 1: control"),
        ('[{"name": "a", "\\u0007": 1}]', "json", "InventoryInvalid", "item 1: control"),
        ('- "web\\e]0;pwned\\a"\n', "yaml", "InventoryInvalid", "item 1: control"),
        ("web\u2066-1\n", "lines", "InventoryInvalid", "line 1: control"),
        ("web\x9b31m\n", "lines", "InventoryInvalid", "line 1: control"),
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


ALIAS_BOMB = (  # 377 bytes that expand to a billion nodes
    "- &a [x,x,x,x,x,x,x,x,x,x]\n- &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "- &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n- &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "- &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n- &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "- &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n- &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "- &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


def test_a_yaml_alias_bomb_is_refused_before_it_grows(tmp_path):
    """The runbook loader's budgets: aliases count as expanded, before anything is built."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(InventoryError) as refused:
            _load(tmp_path, ALIAS_BOMB, "yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.kind == "InventoryTooLarge" and "expands to" in str(refused.value)
    assert peak < 16 * 1024 * 1024
    deep = "- " + "[" * 100 + "]" * 100 + "\n"
    with pytest.raises(InventoryError, match="nesting deeper than 64"):
        _load(tmp_path, deep, "yaml")
    shared = "- &x [a, b]\n- *x\n- {name: web-1, tags: *x}\n"
    assert _load(tmp_path, shared, "yaml").items[1] == ["a", "b"]  # a plain alias is fine


def test_inventories_are_confined_to_the_worker_s_directories(tmp_path, monkeypatch):
    """An inventory path must resolve, after its links, inside QLRF_INVENTORY_DIRS, and
    never to one of qlrf-run's own files: the attacks of the adversarial review."""
    allowed = tmp_path / "inventories"
    allowed.mkdir()
    monkeypatch.setenv("QLRF_INVENTORY_DIRS", str(allowed))
    (allowed / "fleet.txt").write_text("web-1\n")
    assert load(str(allowed / "fleet.txt"), "lines").items == ["web-1"]
    secrets = allowed / "worker.secrets"  # inside the folder, and still the worker's own
    secrets.write_text("TOKEN=hunter2\n")
    monkeypatch.setenv("QLRF_SECRETS_FILE", str(secrets))
    seal = tmp_path / "seal"
    seal.write_text("PRIVATE KEY\n")
    monkeypatch.setenv("QLRF_SEAL_KEY", str(seal))
    (allowed / "to-seal").symlink_to(seal)
    (allowed / "to-shadow").symlink_to("/etc/shadow")
    (allowed / "escape").symlink_to(tmp_path)
    attempts = {
        "/etc/shadow": "outside the directories",
        str(allowed / "to-shadow"): "outside the directories",
        str(allowed / "escape" / "seal"): "outside the directories",
        str(allowed / ".." / "seal"): "outside the directories",
        str(secrets): "qlrf-run's own files",
        str(allowed / "to-seal"): "outside the directories",
        str(tmp_path / "no-such-file"): "outside the directories",  # not even looked for
    }
    for path, said in attempts.items():
        with pytest.raises(InventoryError) as refused:
            load(path, "lines")
        assert refused.value.kind == "InventoryNotAllowed", path
        assert said in str(refused.value), (path, str(refused.value))
        assert "hunter2" not in str(refused.value) and "PRIVATE" not in str(refused.value)
    monkeypatch.delenv("QLRF_INVENTORY_DIRS")
    with pytest.raises(InventoryError, match="names none; set QLRF_INVENTORY_DIRS"):
        load(str(allowed / "fleet.txt"), "lines")
