"""`worker --health-port`: /healthz (the process answers) and /readyz (it polls Temporal).

A plain HTTP server on a daemon thread: probes must answer even while the event
loop is busy, and a wedged loop shows as /readyz going stale, not as a hung probe.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from runner.errors import QlrfError

# /readyz turns unready when the last successful check is older than this.
STALE_SECONDS = 30.0


class Health:
    """The worker's readiness, as the watcher last saw it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready_at: float | None = None
        self._reason = "starting: not polling Temporal yet"

    def ready(self) -> None:
        with self._lock:
            self._ready_at = time.monotonic()
            self._reason = "polling Temporal"

    def unready(self, reason: str) -> None:
        with self._lock:
            self._ready_at = None
            self._reason = reason

    def answer(self) -> tuple[bool, str]:
        with self._lock:
            at, reason = self._ready_at, self._reason
        if at is None:
            return False, reason
        if time.monotonic() - at > STALE_SECONDS:
            return False, f"no successful check for {STALE_SECONDS:.0f}s"
        return True, reason


class _Handler(BaseHTTPRequestHandler):
    health: Health
    timeout = 10  # a client that connects and says nothing does not keep a thread

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, "ok\n")
        elif path == "/readyz":
            ok, reason = self.health.answer()
            self._send(200 if ok else 503, ("ready: " if ok else "not ready: ") + reason + "\n")
        else:
            self._send(404, "not found: try /healthz or /readyz\n")

    def _send(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would drown the worker's log


def serve_health(health: Health, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve the probes on a daemon thread, on `host` (loopback unless `--health-host` says
    otherwise); QlrfError when the port cannot be bound."""
    handler = type("HealthHandler", (_Handler,), {"health": health})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise QlrfError(
            f"--health-port {port} on {host}: cannot listen ({exc.strerror}); choose a free port, "
            "or a --health-host this machine has"
        ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="qlrf-health", daemon=True).start()
    return server
