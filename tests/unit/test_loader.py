"""The loader: positions, YAML 1.2 scalars, and refusal of hostile or broken input."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from runner.dsl import loader
from runner.dsl.loader import load_file, load_text


def codes(doc):
    return [d.code for d in doc.diagnostics]


def test_every_node_keeps_its_line_and_column():
    """Values and keys report 1-based positions, also inside flow collections."""
    doc = load_text("a: 1\nb:\n  c: [x, {d: y}]\n", "f.yaml")
    assert doc.at(("a",)) == (1, 4)
    assert doc.at(("b", "c", 1, "d")) == (3, 14)
    assert doc.key_at(("b", "c")) == (3, 3)
    assert doc.at(("b", "c", 7)) == (3, 6), "a missing index falls back to its parent"


def test_scalars_follow_yaml_1_2_core_schema():
    """yes/no/on stay text, timestamps stay text, numbers and booleans are typed."""
    doc = load_text(
        "a: yes\nb: on\nc: 2024-01-01\nd: 0x1f\ne: 1.5\nf: true\ng: ~\nh: '5'\ni: !!str 5\n",
        "f.yaml",
    )
    assert doc.data == {
        "a": "yes",
        "b": "on",
        "c": "2024-01-01",
        "d": 31,
        "e": 1.5,
        "f": True,
        "g": None,
        "h": "5",
        "i": "5",
    }


def test_duplicate_keys_are_reported_with_both_lines():
    """The second occurrence is an error that names the first."""
    doc = load_text("steps:\n  - id: a\n    id: b\n", "f.yaml")
    [diag] = doc.diagnostics
    assert (diag.code, diag.line, diag.column, diag.path) == ("duplicate-key", 3, 5, "steps[0].id")
    assert "line 2" in diag.message


def test_syntax_errors_carry_their_position():
    """A broken flow mapping points at where the parser gave up."""
    doc = load_text("a: {b: 1\nc: 2\n", "f.yaml")
    [diag] = doc.diagnostics
    assert diag.code == "yaml-syntax" and diag.line == 2


def test_alias_bomb_is_refused_quickly_and_in_bounded_memory():
    """A billion-laughs document is refused before expansion: fast, and with little memory."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = "\n".join(lines) + "\n"
    tracemalloc.start()
    started = time.perf_counter()
    doc = load_text(text, "bomb.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes(doc) == ["too-large"]
    assert elapsed < 2.0 and peak < 20 * 1024 * 1024


def test_deep_nesting_is_refused_for_block_and_flow_styles():
    """10,000 levels of nesting are refused, never a RecursionError."""
    block = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 10_000))
    flow = "[" * 10_000 + "]" * 10_000
    assert codes(load_text(block, "b.yaml")) == ["too-deep"]
    assert codes(load_text(flow, "f.yaml")) == ["too-deep"]


def test_oversized_file_is_refused_from_its_size(tmp_path):
    """A 50 MB file is refused without being read or parsed."""
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.seek(50 * 1024 * 1024)
        fh.write(b"\n")
    started = time.perf_counter()
    doc = load_file(big)
    assert codes(doc) == ["too-large"]
    assert "50.0 MiB" in doc.diagnostics[0].message
    assert time.perf_counter() - started < 1.0


def test_sheer_number_of_nodes_is_bounded(monkeypatch):
    """Without aliases, the node limit still applies."""
    monkeypatch.setattr(loader, "MAX_NODES", 100)
    doc = load_text("a: [" + ", ".join(["1"] * 200) + "]\n", "f.yaml")
    assert codes(doc) == ["too-large"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a: .inf\n", "bad-number"),
        ("a: !!int abc\n", "bad-tag"),
        ("a: !!python/object:os.system x\n", "unknown-tag"),
        ("b: &b [1]\na:\n  <<: *b\n", "bad-merge"),
        ("? [a, b]\n: c\n", "complex-key"),
        ("a: *nowhere\n", "yaml-syntax"),
        ("a: 1\n---\nb: 2\n", "multiple-documents"),
        ("# only a comment\n", "empty-file"),
        ("a:\n\t- b\n", "yaml-syntax"),
    ],
)
def test_broken_input_gets_a_coded_diagnostic(text, code):
    """Each kind of broken input maps to its own diagnostic code."""
    assert codes(load_text(text, "f.yaml")) == [code]


def test_merge_keys_keep_explicit_values():
    """`<<: *anchor` fills in missing keys; keys written in place win."""
    doc = load_text("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["c"] == {"x": 1, "y": 3}
    assert doc.diagnostics == []


def test_files_that_are_not_utf8_or_unreadable(tmp_path):
    """Binary files and unreadable paths are diagnostics, not exceptions."""
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00a")
    assert codes(load_file(binary)) == ["encoding"]
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"a: 1\x00")
    assert codes(load_file(nul)) == ["encoding"]
    assert codes(load_file(tmp_path)) == ["unreadable"]
