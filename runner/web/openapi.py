"""The API's OpenAPI document, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_OBJECT: dict[str, Any] = {"type": "object"}


def _answers(ok: str, *errors: int) -> dict[str, Any]:
    found: dict[str, Any] = {
        "200": {"description": ok, "content": {"application/json": {"schema": _OBJECT}}}
    }
    for status in (401, *errors):
        found[str(status)] = {
            "description": {
                401: "no valid session or bearer token",
                403: "a cookie request without its CSRF token",
                404: "no such run or gate",
                409: "refused by the run, with its reason",
                422: "the request does not read",
                429: "too many decisions from this person",
                503: "Temporal or the identity provider does not answer",
            }[status],
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
    return found


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def document(public_url: str) -> dict[str, Any]:
    run, gate = _path_param("run"), _path_param("gate")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qlrf-run approvals service",
            "version": "1",
            "description": "Runs, their gates and their decisions. Authenticate with the "
            "session cookie of the sign-in (plus X-CSRF-Token on unsafe methods) or with "
            "Authorization: Bearer and an access token of the service's identity provider.",
        },
        "servers": [{"url": public_url}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-qlrf"},
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                    "required": ["type", "title", "status", "detail"],
                },
                "Decision": {
                    "type": "object",
                    "properties": {
                        "decision": {"enum": ["approve", "reject", "modify"]},
                        "comment": {"type": "string"},
                        "set": {"type": "object", "description": "modify: {input: value}"},
                    },
                    "required": ["decision"],
                },
                "Control": {
                    "type": "object",
                    "properties": {
                        "action": {"enum": ["pause", "resume", "cancel", "set", "skip"]},
                        "comment": {"type": "string"},
                        "step": {"type": "string"},
                        "concurrency": {"type": "integer", "minimum": 1},
                        "items": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["action"],
                },
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/v1/runs": {
                "get": {
                    "summary": "Runs, newest first",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("kind", "status", "name", "limit")
                    ],
                    "responses": _answers("{runs: [...]}", 422, 503),
                },
                "post": {
                    "summary": "Start a run: a library runbook, or a proposal sent as text",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "runbook": {"type": "string"},
                                        "text": {"type": "string"},
                                        "inputs": {"type": "object"},
                                    },
                                }
                            }
                        }
                    },
                    "responses": _answers("{run_id, page, provenance}", 403, 404, 422, 429),
                },
            },
            "/api/v1/runs/{run}": {
                "get": {
                    "summary": "A run's view: the JSON of `qlrf-run status --format json`",
                    "parameters": [run],
                    "responses": _answers("the run view", 404, 503),
                }
            },
            "/api/v1/pending": {
                "get": {
                    "summary": "Every waiting gate and lock wait (`qlrf-run pending`)",
                    "responses": _answers("a list of gates and lock waits", 503),
                }
            },
            "/api/v1/runs/{run}/evidence": {
                "get": {
                    "summary": "The run's evidence bundle (`qlrf-run evidence`)",
                    "parameters": [run],
                    "responses": _answers("the bundle", 404, 503),
                }
            },
            "/api/v1/runs/{run}/gates/{gate}/decisions": {
                "post": {
                    "summary": "Approve, reject or modify a gate",
                    "parameters": [run, gate],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Decision"}
                            }
                        },
                    },
                    "responses": _answers("the gate's state", 403, 404, 409, 422, 429, 503),
                }
            },
            "/api/v1/runs/{run}/controls": {
                "post": {
                    "summary": "Pause, resume, cancel, set a fan-out's concurrency, skip items",
                    "parameters": [run],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Control"}}
                        },
                    },
                    "responses": _answers("the control's record", 403, 404, 409, 422, 429, 503),
                }
            },
        },
    }
