"""What a notification says, from the event the run sent: a title, a text, links.

The run sends plain facts (runner/engine/notices.py); the words and the links are
made here, on the worker, so that the review page's address is the worker's to give
(QLRF_WEB_PUBLIC_URL, as `apply` prints it) and nothing of a channel reaches history.
No link decides anything by being opened: the review page does, after sign-in.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from runner.contract.vocab import NotifyEvent

PUBLIC_URL = "QLRF_WEB_PUBLIC_URL"
DEFAULT_URL = "http://127.0.0.1:8089"
TEXT_LIMIT = 3000  # a Slack section's text; longer messages are cut with a mark

GATE_EVENTS = frozenset(
    (
        NotifyEvent.GATE_WAITING,
        NotifyEvent.GATE_REMINDER,
        NotifyEvent.GATE_ESCALATED,
    )
)


def base_url() -> str:
    return os.environ.get(PUBLIC_URL, "").strip().rstrip("/") or DEFAULT_URL


def _quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def run_page(run: str) -> str:
    """The run's page on the approvals service, as `apply` prints it and links give it."""
    return f"{base_url()}/runs/{_quoted(run)}"


@dataclass(frozen=True)
class Notice:
    """One event of one run, as the run sent it."""

    event: str
    run: str
    data: dict[str, Any]

    @classmethod
    def of(cls, request: dict[str, Any]) -> Notice:
        data = request.get("data")
        return cls(str(request["event"]), str(request["run"]), dict(data or {}))

    @property
    def gate(self) -> str | None:
        gate = self.data.get("gate")
        return str(gate) if gate else None

    @property
    def actionable(self) -> bool:
        """A gate that waits for a decision: the message offers Approve and Reject."""
        return self.event in GATE_EVENTS and self.gate is not None

    def run_link(self) -> str:
        return run_page(self.run)

    def review_link(self) -> str:
        if self.gate is None:
            return self.run_link()
        return f"{self.run_link()}/gates/{_quoted(self.gate)}"

    def link(self) -> str:
        return self.review_link() if self.gate else self.run_link()

    def quorum(self) -> str:
        approvals = int(self.data.get("approvals") or 0)
        needed = int(self.data.get("min_approvals") or 1)
        return f"{approvals} of {needed}"

    def approvers(self) -> str:
        return ", ".join(str(a) for a in self.data.get("approvers") or []) or "anyone"

    def title(self) -> str:
        name = self.data.get("name") or self.run
        gate, status = self.gate, self.data.get("status")
        titles = {
            NotifyEvent.RUN_STARTED: f"run {self.run} ({name}) started",
            NotifyEvent.RUN_SUCCEEDED: f"run {self.run} ({name}) succeeded",
            NotifyEvent.RUN_FAILED: f"run {self.run} ({name}) {status or 'failed'}",
            NotifyEvent.RUN_CANCELLED: f"run {self.run} ({name}) was cancelled",
            NotifyEvent.GATE_WAITING: f"gate {gate} of run {self.run} waits for approval",
            NotifyEvent.GATE_REMINDER: f"reminder: gate {gate} of run {self.run} still waits",
            NotifyEvent.GATE_ESCALATED: f"gate {gate} of run {self.run} is escalated",
            NotifyEvent.GATE_DECIDED: f"gate {gate} of run {self.run} was {status}",
            NotifyEvent.GATE_TIMED_OUT: f"gate {gate} of run {self.run} timed out",
            NotifyEvent.WAVE_BUDGET_SPENT: (
                f"run {self.run}: wave {self.data.get('wave')} of {self.data.get('step')} "
                "spent its failure budget"
            ),
            NotifyEvent.LOCK_WAITING: (f"run {self.run} waits for lock {self.data.get('key')}"),
        }
        if self.event == "notify_test":
            return "qlrf-run notify test"
        return str(titles.get(self.event, f"{self.event}: run {self.run}"))  # type: ignore[call-overload]

    def facts(self) -> list[tuple[str, str]]:
        """The lines under the title: label and value, as text."""
        data = self.data
        found: list[tuple[str, str]] = []
        if self.gate is not None and self.event != NotifyEvent.GATE_DECIDED:
            found += [("Approvers", self.approvers()), ("Quorum", self.quorum())]
            if data.get("deadline"):
                found.append(("Deadline", str(data["deadline"])))
        if data.get("added"):
            found.append(("Added approvers", ", ".join(str(a) for a in data["added"])))
        if data.get("by"):
            found.append(("By", str(data["by"])))
        if data.get("comment"):
            found.append(("Comment", str(data["comment"])))
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            step = f" at {error['step']}" if error.get("step") else ""
            found.append(("Error", f"{error.get('type')}{step}: {error['message']}"))
        if data.get("failed") is not None:
            found.append(("Failed items", f"{data['failed']} (budget {data.get('budget')})"))
        if data.get("holder"):
            found.append(("Held by", str(data["holder"])))
        if data.get("started_by"):
            found.append(("Started by", str(data["started_by"])))
        return found

    def message(self) -> str:
        text = str(self.data.get("message") or "")
        return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"

    def text(self) -> str:
        """The whole notification as plain text (e-mail's text part, apprise's body)."""
        lines = [self.title()]
        if self.message():
            lines += ["", self.message()]
        lines.append("")
        lines += [f"{label}: {value}" for label, value in self.facts()]
        lines += ["", f"Review: {self.link()}" if self.gate else f"Run: {self.link()}"]
        if self.actionable:
            lines.append(f"Or: qlrf-run approve {self.run} {self.gate}")
        return "\n".join(lines)

    def body(self) -> dict[str, Any]:
        """The JSON a webhook receives."""
        return {
            "type": self.event,
            "run": self.run,
            "title": self.title(),
            "link": self.link(),
            "data": self.data,
        }
