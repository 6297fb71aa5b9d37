"""RFC 9457 problem details: every error of the API, as application/problem+json."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    409: "Refused by the run",
    422: "Invalid request",
    429: "Too many decisions",
    503: "Unavailable",
}


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="qlrf"'} if status == 401 else None
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")
