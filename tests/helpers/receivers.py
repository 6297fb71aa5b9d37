"""Real receivers for notifications: one HTTP server that plays Slack's Web API and
records what webhooks, apprise and Slack's response_url get, and an SMTP server
(aiosmtpd) that keeps each mail. Each on a free port, in a thread of the test."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runner.local.temporal import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    got: list[Received] = field(default_factory=list)
    # Paths whose requests are held (not answered) until the event is set.
    held: dict[str, threading.Event] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=lambda: {"U0BOB": "bob@example.com"})

    def at(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            """What was received, in short (for a receiver in a process of its own)."""
            summary = []
            for got in list(receiver.got):
                try:
                    body = json.loads(got.body)
                except ValueError:
                    body = {}
                summary.append(
                    {
                        "path": got.path,
                        "id": got.headers.get("webhook-id"),
                        "type": body.get("type") if isinstance(body, dict) else None,
                        "run": body.get("run") if isinstance(body, dict) else None,
                    }
                )
            data = json.dumps(summary).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            receiver.got.append(Received(self.path, dict(self.headers.items()), body))
            held = receiver.held.get(self.path)
            if held is not None:
                held.wait(60)
            answer: dict[str, Any] = {"ok": True}
            if self.path.endswith("/chat.postMessage"):
                sent = json.loads(body)
                if sent.get("channel") == "#nowhere":
                    answer = {"ok": False, "error": "channel_not_found"}
                else:
                    answer = {"ok": True, "channel": "C0OPS", "ts": f"{len(receiver.got)}.0001"}
            elif self.path.endswith("/users.info"):
                user = json.loads(body).get("user")
                known = receiver.emails.get(user)
                answer = {"ok": True, "user": {"id": user, "profile": {"email": known}}}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)  # a sender killed while it was held has gone

    return Handler


@contextmanager
def http_receiver(port: int | None = None) -> Iterator[Receiver]:
    port = port or free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        for event in receiver.held.values():
            event.set()
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    port: int
    password: str
    mails: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        login, password = data.login.decode(), data.password.decode()
        self.logins.append(login)
        return AuthResult(success=password == self.password)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(parsed)
        return "250 OK queued"


@contextmanager
def smtp_receiver(password: str) -> Iterator[Mailbox]:
    """An SMTP server that takes a login with `password` (over plain text: a test's)."""
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port(), password)
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def serve_forever(port: int) -> None:
    """An HTTP receiver until this process is killed (`python -m tests.helpers.receivers
    PORT`): benchmarks keep it out of the process they measure."""
    with http_receiver(port):
        threading.Event().wait()


if __name__ == "__main__":
    import sys

    serve_forever(int(sys.argv[1]))
