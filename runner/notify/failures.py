"""How a channel says it could not deliver: for good, or for now."""

from __future__ import annotations


class Refused(Exception):
    """The far end refused, or the channel cannot work: sending again would not help
    (Slack's `ok: false`, a 4xx, a URL apprise does not know)."""


class Unreachable(Exception):
    """The far end could not be reached before anything was sent: another attempt may."""


class Uncertain(Exception):
    """The request went out and no answer came: the far end may have it, so it is not
    sent again (a notification is never sent twice)."""
