"""The worker's policy (QLRF_POLICY): who may start, decide and operate which runbooks,
from which commits, and when; and what a proposal may hold (docs/governance.md).

Pure code, used by the worker to check the file at start (runner/dsl/policy_config.py)
and by the run itself (runner/engine/governance.py), which takes the policy with its
trust snapshot and judges against that, so a replay sees what the run saw. No I/O,
no clock: the run passes `workflow.now()`. Time zones come from the standard
`zoneinfo`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner.contract.gate_rules import names, not_let

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MATCH_KEYS = ("kind", "name", "path", "labels")
# What `operate` covers: the control verbs and a redrive.
OPERATIONS = ("pause", "resume", "set", "skip", "cancel", "redrive")
# The policy's own gates: no step id holds a colon, so no runbook's gate is named so
# (a plan naming a step so is refused, engine/governance.py).
GATE_PREFIX = "policy:"
PROPOSAL_GATE = GATE_PREFIX + "proposal"
BREAK_GLASS_GATE = GATE_PREFIX + "break-glass"
DEFAULT_GATE_TIMEOUT = "24h"
_ALLOW = re.compile(
    r"^(?P<days>[A-Za-z]{3}(?:-[A-Za-z]{3})?(?:,[A-Za-z]{3}(?:-[A-Za-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})\s+(?P<zone>\S+)$"
)
_FREEZE = re.compile(
    r"^(?P<first>\d{4}-\d{2}-\d{2})/(?P<last>\d{4}-\d{2}-\d{2})(?:\s+(?P<zone>\S+))?$"
)


class PolicyError(ValueError):
    """A part of the policy that cannot be used; the message says what to write."""


@dataclass(frozen=True)
class Allow:
    """A weekly window: on these days, from `start` to `end` (past midnight when end
    is earlier), in `zone`."""

    text: str
    days: frozenset[int]
    start: time
    end: time | None  # None: 24:00
    zone: ZoneInfo

    def holds(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        begin = self.start.hour * 60 + self.start.minute
        end = 24 * 60 if self.end is None else self.end.hour * 60 + self.end.minute
        if begin < end:
            return local.weekday() in self.days and begin <= minute < end
        # Over midnight: the evening of a listed day, or the morning after it.
        yesterday = (local.weekday() - 1) % 7
        return (local.weekday() in self.days and minute >= begin) or (
            yesterday in self.days and minute < end
        )


@dataclass(frozen=True)
class Freeze:
    """Whole days, first to last inclusive, in `zone` (UTC when the text names none)."""

    text: str
    first: date
    last: date
    zone: ZoneInfo

    def holds(self, now: datetime) -> bool:
        return self.first <= now.astimezone(self.zone).date() <= self.last


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(
            f"{name!r} is not a time zone; write one such as Europe/Berlin or UTC"
        ) from None


def _days(text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        for name in (first, last or first):
            if name.title() not in DAYS:
                raise PolicyError(f"{name!r} is not a day; days are {', '.join(DAYS)}")
        a, b = DAYS.index(first.title()), DAYS.index((last or first).title())
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        found.update(span)
    return frozenset(found)


def _clock(text: str, *, end: bool) -> time | None:
    hours, minutes = int(text[:2]), int(text[3:])
    if end and (hours, minutes) == (24, 0):
        return None
    if hours > 23 or minutes > 59:
        raise PolicyError(f"{text!r} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return time(hours, minutes)


def allow_window(text: str) -> Allow:
    found = _ALLOW.match(text.strip())
    if found is None:
        raise PolicyError(
            f"{text!r} is not a window; write days, hours and a zone: "
            "'Mon-Fri 08:00-18:00 Europe/Berlin'"
        )
    start = _clock(found["start"], end=False)
    assert start is not None
    end = _clock(found["end"], end=True)
    if end == start:
        raise PolicyError(f"{text!r} starts and ends at the same time")
    return Allow(text, _days(found["days"]), start, end, zone(found["zone"]))


def freeze_window(text: str) -> Freeze:
    found = _FREEZE.match(text.strip())
    if found is None:
        raise PolicyError(
            f"{text!r} is not a freeze; write first/last day, and a zone if not UTC: "
            "'2026-12-20/2027-01-04 Europe/Berlin'"
        )
    try:
        first, last = date.fromisoformat(found["first"]), date.fromisoformat(found["last"])
    except ValueError as exc:
        raise PolicyError(f"{text!r}: {exc}") from None
    if last < first:
        raise PolicyError(f"{text!r} ends before it begins")
    return Freeze(text, first, last, zone(found["zone"] or "UTC"))


def pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise PolicyError(f"{text!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True)
class Quorum:
    approvers: tuple[str, ...]
    min_approvals: int = 1
    timeout: str = DEFAULT_GATE_TIMEOUT

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Quorum:
        return cls(
            tuple(str(a) for a in data.get("approvers") or ()),
            int(data.get("min_approvals") or 1),
            str(data.get("timeout") or DEFAULT_GATE_TIMEOUT),
        )


@dataclass(frozen=True)
class Rule:
    index: int
    match: Mapping[str, Any]
    start: tuple[str, ...] | None = None
    approve: tuple[str, ...] | None = None
    operate: tuple[str, ...] | None = None
    require: Mapping[str, Any] = field(default_factory=dict)
    allow: tuple[Allow, ...] = ()
    freeze: tuple[Freeze, ...] = ()
    break_glass: Quorum | None = None

    @property
    def named(self) -> str:
        """The rule as a refusal names it: its index and its match."""
        shown = ", ".join(f"{k}: {_shown(v)}" for k, v in self.match.items()) or "every runbook"
        return f"policy rule {self.index} ({shown})"

    def matches(self, target: Target) -> bool:
        for key, wanted in self.match.items():
            if key == "labels":
                for label, value in dict(wanted).items():
                    have = target.labels.get(label)
                    if have is None or not fnmatch.fnmatchcase(have, str(value)):
                        return False
                continue
            have = {"kind": target.kind, "name": target.name, "path": target.path}.get(key)
            if have is None or not fnmatch.fnmatchcase(have, str(wanted)):
                return False
        return True

    def closed(self, now: datetime) -> str | None:
        """Why the rule's windows keep a start (or a wave) out now; None inside them."""
        for freeze in self.freeze:
            if freeze.holds(now):
                return f"inside the freeze {freeze.text}"
        if self.allow and not any(window.holds(now) for window in self.allow):
            return "outside the change windows " + "; ".join(w.text for w in self.allow)
        return None


@dataclass(frozen=True)
class Proposals:
    principals: tuple[str, ...]
    allow_types: tuple[str, ...] | None
    max_items: int | None
    forbid: tuple[re.Pattern[str], ...]
    gate: Quorum

    def forbidden(self, text: str) -> str | None:
        for found in self.forbid:
            if found.search(text):
                return found.pattern
        return None


@dataclass(frozen=True)
class Target:
    """What rules match: the runbook's kind, name and labels (bound by its plan hash),
    and its path in its repository (from the start's signed provenance)."""

    kind: str
    name: str
    labels: Mapping[str, str]
    path: str | None


@dataclass(frozen=True)
class Policy:
    sha256: str
    rules: tuple[Rule, ...]
    proposals: Proposals | None = None

    def rules_for(self, target: Target) -> list[Rule]:
        return [rule for rule in self.rules if rule.matches(target)]


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def _entries(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def rule(index: int, data: Mapping[str, Any]) -> Rule:
    """One rule from its JSON (the file's, checked by its schema); PolicyError naming
    the window or pattern that cannot be used."""
    windows = data.get("windows") or {}
    glass = windows.get("break_glass")
    return Rule(
        index=index,
        match=dict(data.get("match") or {}),
        start=_entries(data.get("start")),
        approve=_entries(data.get("approve")),
        operate=_entries(data.get("operate")),
        require=dict(data.get("require") or {}),
        allow=tuple(allow_window(str(w)) for w in windows.get("allow") or ()),
        freeze=tuple(freeze_window(str(w)) for w in windows.get("freeze") or ()),
        break_glass=Quorum.from_json(glass) if isinstance(glass, Mapping) else None,
    )


def proposals(data: Mapping[str, Any]) -> Proposals:
    types = data.get("allow_types")
    most = data.get("max_items")
    return Proposals(
        principals=tuple(str(p) for p in data.get("principals") or ()),
        allow_types=None if types is None else tuple(str(t) for t in types),
        max_items=None if most is None else int(most),
        forbid=tuple(pattern(str(p)) for p in data.get("forbid") or ()),
        gate=Quorum.from_json(data.get("gate") or {}),
    )


def from_json(data: Mapping[str, Any]) -> Policy:
    """The policy from its JSON (the file's data, and its sha256)."""
    found = data.get("proposals")
    return Policy(
        sha256=str(data.get("sha256") or ""),
        rules=tuple(rule(i, r) for i, r in enumerate(data.get("rules") or ())),
        proposals=proposals(found) if isinstance(found, Mapping) else None,
    )


def refusal(
    rules: Sequence[Rule],
    who: str,
    groups: Mapping[str, Sequence[str]],
    field_: str,
    doing: str,
) -> str | None:
    """Why `who` may not do `doing` under the rules' `field_` (start, approve, operate);
    None if every rule that says something lets them."""
    for found in rules:
        entries = getattr(found, field_)
        problem = None if entries is None else not_let(found.named, entries, who, groups, doing)
        if problem is not None:
            return problem
    return None


def requirement(rules: Sequence[Rule], provenance: Mapping[str, Any] | None) -> str | None:
    """Why the runbook's provenance does not meet a rule's `require`; None if it does."""
    seen = dict(provenance or {})
    for found in rules:
        need = found.require
        if not need:
            continue
        if need.get("committed") or need.get("branch") or need.get("signed"):
            if not seen.get("git"):
                why = seen.get("note") or "the start says nothing of where the runbook came from"
                return f"{found.named} requires a committed runbook; {why}"
            if not seen.get("tracked"):
                return (
                    f"{found.named} requires a committed runbook; {seen.get('path')} is not "
                    "committed: commit it, push it, and run it from there"
                )
            if not seen.get("clean"):
                return (
                    f"{found.named} requires a committed runbook; {seen.get('path')} differs "
                    f"from commit {str(seen.get('commit'))[:12]}: commit the change, or run "
                    "the file as committed"
                )
        branch = need.get("branch")
        if branch:
            on = [str(b) for b in seen.get("branches") or ()]
            if not any(b == branch or b.endswith(f"/{branch}") for b in on):
                shown = ", ".join(on) or "no branch"
                return (
                    f"{found.named} requires a commit on {branch}; commit "
                    f"{str(seen.get('commit'))[:12]} is on {shown}: merge it first"
                )
        if need.get("signed"):
            signature = seen.get("signature") or {}
            if not signature.get("verified"):
                return (
                    f"{found.named} requires a commit signed by a key of the trust file; "
                    f"commit {str(seen.get('commit'))[:12]}: "
                    f"{signature.get('detail') or 'no signature verifies'}"
                )
    return None


def proposal_of(policy: Policy, who: str, groups: Mapping[str, Sequence[str]]) -> bool:
    found = policy.proposals
    return found is not None and names(found.principals, who, groups)
