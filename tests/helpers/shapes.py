"""The JSON each command prints, one schema per command (scripts rely on these).

`run_id` is always the RUN every command takes (the Temporal workflow id), Temporal's
own run id is `temporal_run_id`, and every time is UTC ISO 8601 with milliseconds
and a `Z`.
"""

from __future__ import annotations

from typing import Any

import jsonschema

TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"}
MAYBE_TIME = {"anyOf": [TIME, {"type": "null"}]}
RUN_ID = {"type": "string", "minLength": 1}
TEMPORAL_RUN_ID = {"type": "string", "pattern": r"^[0-9a-f-]{36}$"}
ERROR = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    ]
}
RUN_STATUS = {"enum": ["running", "succeeded", "failed", "cancelled", "timed_out", "terminated"]}
STEP_STATUS = {
    "enum": ["pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"]
}
GATE = {
    "type": "object",
    "required": ["gate", "status", "message", "approvers", "approvals", "deadline"],
    "properties": {
        "gate": {"type": "string"},
        "status": {"enum": ["waiting", "approved", "rejected", "timed_out", "cancelled"]},
        "approvers": {"type": "array", "items": {"type": "string"}},
        "approvals": {
            "type": "array",
            "items": {"type": "object", "required": ["by", "at"], "properties": {"at": TIME}},
        },
        "waiting_since": MAYBE_TIME,
        "deadline": MAYBE_TIME,
    },
}

STATUS = {
    "type": "object",
    "required": [
        "run_id",
        "temporal_run_id",
        "name",
        "kind",
        "status",
        "started_by",
        "started_at",
        "finished_at",
        "inputs",
        "steps",
        "gates",
        "outputs",
        "error",
    ],
    "properties": {
        "run_id": RUN_ID,
        "temporal_run_id": TEMPORAL_RUN_ID,
        "status": RUN_STATUS,
        "started_at": TIME,
        "finished_at": MAYBE_TIME,
        "steps": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["status", "attempts", "started_at", "finished_at", "output", "error"],
                "properties": {
                    "status": STEP_STATUS,
                    "attempts": {"type": "integer", "minimum": 0},
                    "started_at": MAYBE_TIME,
                    "finished_at": MAYBE_TIME,
                    "error": ERROR,
                },
            },
        },
        "gates": {"type": "array", "items": GATE},
        "error": ERROR,
    },
}

DETACHED = {
    "type": "object",
    "required": ["run_id", "temporal_run_id", "attached"],
    "additionalProperties": False,
    "properties": {
        "run_id": RUN_ID,
        "temporal_run_id": TEMPORAL_RUN_ID,
        "attached": {"type": "boolean"},
    },
}

LIST = {
    "type": "array",
    "items": {
        "type": "object",
        "required": [
            "run_id",
            "temporal_run_id",
            "name",
            "kind",
            "status",
            "started_at",
            "finished_at",
            "schedule",
        ],
        "additionalProperties": False,
        "properties": {
            "run_id": RUN_ID,
            "temporal_run_id": TEMPORAL_RUN_ID,
            "name": {"type": ["string", "null"]},
            "kind": {"type": ["string", "null"]},
            "status": RUN_STATUS,
            "started_at": TIME,
            "finished_at": MAYBE_TIME,
            "schedule": {"type": ["string", "null"]},
        },
    },
}

PENDING = {
    "type": "array",
    "items": {
        "type": "object",
        "required": [
            "run_id",
            "name",
            "gate",
            "message",
            "approvers",
            "min_approvals",
            "approvals",
            "waiting_since",
            "deadline",
        ],
        "properties": {"run_id": RUN_ID, "waiting_since": TIME, "deadline": TIME},
    },
}

HISTORY = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["at", "event", "step", "item", "attempt", "actor", "detail"],
        "additionalProperties": False,
        "properties": {
            "at": TIME,
            "event": {"type": "string"},
            "step": {"type": ["string", "null"]},
            "item": {"type": ["string", "null"]},
            "attempt": {"type": ["integer", "null"]},
            "actor": {"type": ["string", "null"]},
            "detail": {},
        },
    },
}

LOGS = {
    "type": "object",
    "required": [
        "run_id",
        "step",
        "item",
        "status",
        "attempt",
        "exit_code",
        "stdout",
        "stderr",
        "error",
    ],
    "properties": {"run_id": RUN_ID, "status": STEP_STATUS},
}

EVIDENCE = {
    "type": "object",
    "required": ["run", "definition", "plan_hash", "inputs", "steps", "approvals", "digest"],
    "properties": {
        "run": {
            "type": "object",
            "required": ["run_id", "name", "kind", "status", "started_by", "started_at"],
            "properties": {"run_id": RUN_ID, "started_at": TIME, "finished_at": MAYBE_TIME},
        },
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"started_at": MAYBE_TIME, "finished_at": MAYBE_TIME},
            },
        },
        "approvals": {
            "type": "array",
            "items": {"type": "object", "properties": {"at": TIME}},
        },
    },
}


def check(value: Any, schema: dict[str, Any]) -> None:
    """Fail with the first mismatch, named by its path."""
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(value), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        raise AssertionError(f"{where or '(top)'}: {first.message}")
