"""What a run printed reaches a person's terminal shown, never obeyed."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.text import Text

from runner.cli.console import safe
from runner.terminal import visible

HOSTILE = "ok\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rfake line\x9b31m\x7fend"


def test_control_sequences_are_shown_not_obeyed():
    shown = visible(HOSTILE)
    assert len(shown) == len(HOSTILE)  # one for one: styled spans keep their place
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown)
    assert shown.startswith("ok\u241b]52;")  # ESC as its control picture
    assert "\u240dfake line" in shown  # a carriage return cannot hide the line


def test_newlines_tabs_and_text_pass_unchanged():
    assert visible("a\tb\nc — ünïcode ✓") == "a\tb\nc — ünïcode ✓"


def test_the_console_shows_styled_lines_safely():
    line = Text("host ")
    line.append(HOSTILE, style="red")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard")
    console.print(safe(Group(line)))
    printed = buffer.getvalue()
    # the only escapes left are the console's own colour codes
    assert "\x1b]52" not in printed and "\x1b[2J" not in printed and "\r" not in printed
    assert "\x1b[31m" in printed
    assert "\u241b]52;c;cm0gLXJmIH4=" in printed
