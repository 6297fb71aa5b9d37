"""Where people read qlrf-run's output: colour in a terminal, a plain log otherwise.

Colour is off when the output is not a terminal, when NO_COLOR is set, or with
`--no-color`. Text is never read as markup, so a message with brackets in it is
printed as it is.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from runner.terminal import visible

if TYPE_CHECKING:
    from rich.console import Console

_no_color = False


def set_no_color(value: bool) -> None:
    global _no_color
    _no_color = _no_color or value


def safe(renderable: Any) -> Any:
    """A line or a group of lines with the run's control characters shown, not obeyed
    (runner/terminal.py); styles keep their place, since each character stays one."""
    from rich.console import Group
    from rich.text import Text

    if isinstance(renderable, str):
        return visible(renderable)
    if isinstance(renderable, Text):
        shown = renderable.copy()
        shown.plain = visible(renderable.plain)
        return shown
    if isinstance(renderable, Group):
        return Group(*(safe(r) for r in renderable.renderables))
    return renderable


def make_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    class SafeConsole(Console):
        def print(self, *objects: Any, **kwargs: Any) -> None:
            super().print(*(safe(o) for o in objects), **kwargs)

    return SafeConsole(
        stderr=stderr,
        no_color=_no_color or bool(os.environ.get("NO_COLOR")),
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
    )


# Styles by what a line says, not by where it comes from.
STYLES = {
    "succeeded": "green",
    "approved": "green",
    "failed": "bold red",
    "rejected": "bold red",
    "timed_out": "bold red",
    "retry": "yellow",
    "waiting": "bold yellow",
    "paused": "yellow",
    "running": "cyan",
    "started": "cyan",
    "skipped": "dim",
    "cancelled": "magenta",
    "hint": "dim",
    "info": "",
}
