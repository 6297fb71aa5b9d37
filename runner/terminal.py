"""Text from a run, made safe for a person's terminal.

A step's output, an error message, a gate's comment or an inventory's item name can
hold terminal control sequences: a hostile host or command could clear the screen,
retitle the window, write the clipboard (OSC 52) or hide lines with carriage
returns. Before such text reaches a terminal, every control character except the
newline and the tab is shown as its Unicode control picture (ESC as ␛), one
character for one, so styled spans keep their place. JSON output needs none of
this: it escapes control characters itself.
"""

from __future__ import annotations

_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)}
_PICTURES[0x7F] = "\u2421"  # ␡
for _code in range(0x80, 0xA0):  # C1 controls, CSI (0x9b) among them
    _PICTURES[_code] = "\ufffd"
del _PICTURES[ord("\n")], _PICTURES[ord("\t")]
_TABLE = str.maketrans(_PICTURES)


def visible(text: str) -> str:
    """`text` with its control characters shown, not obeyed; same length."""
    return text.translate(_TABLE)
