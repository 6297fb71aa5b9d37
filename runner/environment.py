"""The operator's environment variables, checked before any work starts.

A malformed or unreachable QLRF_TEMPORAL_ADDRESS or QLRF_DATABASE_URL gets one
line that names the variable, shows the value with any password hidden, and says
what to do, instead of a hang or a traceback deep inside a client library.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit, urlunsplit

from runner.errors import QlrfError

TEMPORAL_VARIABLE = "QLRF_TEMPORAL_ADDRESS"
DATABASE_VARIABLE = "QLRF_DATABASE_URL"
# How long reaching Temporal may take before the command says so.
CONNECT_SECONDS = 10.0

_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def redact(url: str) -> str:
    """The URL with its password (and any `password=` parameter) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(?<=:)[^:@/]*(?=@)", "***", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def temporal_address(value: str) -> str:
    """QLRF_TEMPORAL_ADDRESS as HOST:PORT; QlrfError naming the variable otherwise."""
    shown = value if len(value) <= 200 else value[:200] + "..."
    advice = f"set {TEMPORAL_VARIABLE} to HOST:PORT, e.g. temporal.example.com:7233"
    if "://" in value:
        raise QlrfError(f"{TEMPORAL_VARIABLE}={shown!r} has a scheme; {advice}")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QlrfError(f"{TEMPORAL_VARIABLE}={shown!r} is not HOST:PORT; {advice}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not _HOST.match(bare):
            raise QlrfError(
                f"{TEMPORAL_VARIABLE}={shown!r}: {host!r} is no host name; {advice}"
            ) from None
    return value


def database_url_given() -> str | None:
    """QLRF_DATABASE_URL when set, checked for its form; None when unset."""
    url = os.environ.get(DATABASE_VARIABLE)
    if not url:
        return None
    advice = (
        f"set {DATABASE_VARIABLE} to postgresql://USER:PASSWORD@HOST:PORT/DATABASE, "
        "or unset it to use the embedded PostgreSQL"
    )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise QlrfError(f"{DATABASE_VARIABLE}={redact(url)!r} is malformed; {advice}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise QlrfError(f"{DATABASE_VARIABLE}={redact(url)!r} is not a postgresql:// URL; {advice}")
    if not parts.hostname and "host=" not in parts.query:
        raise QlrfError(f"{DATABASE_VARIABLE}={redact(url)!r} names no host; {advice}")
    return url


def hide_password(text: str, url: str) -> str:
    """`text` (an error message about `url`) with the URL's password taken out."""
    text = text.replace(url, redact(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text
