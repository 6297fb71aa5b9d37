"""Files a person names are read only when they are regular files; anything else is
refused by name, at once, without reading a byte."""

from __future__ import annotations

import os
import socket
import time

import pytest

from runner.files import FileRefused, read_text
from tests.helpers.cli import qlrf


def _loop(path):
    os.symlink(path, path.with_suffix(".b"))
    os.symlink(path.with_suffix(".b"), path)


def test_a_regular_file_is_read():
    """The plain case still works."""
    assert "qlrf/v1" in read_text("tests/runbooks/payments-dr-drill.yaml")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: os.mkfifo(p), "FIFO"),
        (lambda p: os.mkdir(p), "directory"),
        (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "socket"),
        (lambda p: os.symlink("/dev/zero", p), "character device"),
        (_loop, "symlink loop"),
        (lambda p: os.symlink(p.with_name("gone"), p), "does not exist"),
        (lambda p: None, "no such file"),
    ],
)
def test_anything_else_is_refused_by_name(tmp_path, make, words):
    """FIFO, directory, socket, device, symlink loop, dangling link, missing file."""
    path = tmp_path / "x.yaml"
    make(path)
    with pytest.raises(FileRefused, match=words):
        read_text(path, "runbook")


def test_validate_and_plan_refuse_a_fifo_without_hanging(tmp_path):
    """A FIFO named like a runbook used to hang `validate` and `plan` forever."""
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    began = time.monotonic()
    for command in (["validate", str(fifo)], ["plan", str(fifo)]):
        result = qlrf(*command, timeout=30)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "is a FIFO (named pipe)" in result.stderr and "Traceback" not in result.stderr
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "also.yaml")
    found = qlrf("validate", str(folder), timeout=30)
    assert found.returncode == 1 and "error[unreadable]" in found.stdout
    assert time.monotonic() - began < 30  # a hang would have hit the subprocess timeout


def test_a_symlink_loop_is_named(tmp_path):
    """`validate` says it is a loop, not that the file is missing."""
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    os.symlink(b, a)
    os.symlink(a, b)
    result = qlrf("validate", str(a))
    assert result.returncode == 2 and "symlink loop" in result.stderr


def test_an_inputs_file_and_an_at_path_input_are_regular_files_too(tmp_path):
    """--inputs-file and --input k=@path refuse a FIFO as well."""
    fifo = tmp_path / "inputs.yaml"
    os.mkfifo(fifo)
    via_file = qlrf(
        "plan", "tests/runbooks/payments-dr-drill.yaml", "--inputs-file", str(fifo), timeout=30
    )
    assert via_file.returncode == 2 and "FIFO" in via_file.stderr
    via_input = qlrf(
        "plan", "tests/runbooks/payments-dr-drill.yaml", "--input", f"region=@{fifo}", timeout=30
    )
    assert via_input.returncode == 2 and "FIFO" in via_input.stderr


def test_a_script_of_80000_braces_validates_in_well_under_a_second(tmp_path):
    """No regex over user text is quadratic: 80,000 `{` in a script is read in linear time."""
    from runner.dsl.validate import default_validator

    text = (
        "apiVersion: qlrf/v1\nkind: Runbook\nname: braces\nsteps:\n  - id: a\n    type: shell\n"
        f'    with: {{script: "{"{" * 80000}"}}\n'
        "  - id: b\n    type: sleep\n"
        f'    with: {{duration: "{"{{" * 40000}"}}\n'
    )
    validator = default_validator()
    began = time.perf_counter()
    checked = validator.check_text(text, "braces.yaml")
    took = time.perf_counter() - began
    assert {d.code for d in checked.diagnostics} == {"invalid-duration", "template-syntax"}
    assert took < 1.0, f"validate took {took:.2f} s"
