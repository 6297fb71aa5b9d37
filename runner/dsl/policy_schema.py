"""The JSON Schema of QLRF_POLICY, published as schemas/policy.schema.json (an editor
completes the file with it; the worker checks it at start, docs/governance.md)."""

from __future__ import annotations

from typing import Any

from runner.trust.policy import OPERATIONS

_PRINCIPALS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "description": "Principals of the trust file, or group:NAME of the workers' groups",
}
_QUORUM: dict[str, Any] = {
    "type": "object",
    "required": ["approvers"],
    "additionalProperties": False,
    "properties": {
        "approvers": {**_PRINCIPALS, "minItems": 1},
        "min_approvals": {"type": "integer", "minimum": 1, "maximum": 100},
        "timeout": {"type": "string", "description": "How long the gate waits (default 24h)"},
    },
}
_GLOB = {"type": "string", "minLength": 1, "description": "A glob (* ? [..])"}

RULE: dict[str, Any] = {
    "type": "object",
    "required": ["match"],
    "additionalProperties": False,
    "properties": {
        "match": {
            "type": "object",
            "additionalProperties": False,
            "description": "Which runbooks the rule covers; {} covers every runbook",
            "properties": {
                "kind": {**_GLOB, "description": "The runbook's kind (Drill, Campaign, ...)"},
                "name": {**_GLOB, "description": "A glob over the runbook's name"},
                "path": {**_GLOB, "description": "A glob over its path in its repository"},
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Labels the runbook must carry (values are globs)",
                },
            },
        },
        "start": {**_PRINCIPALS, "description": "Who may start these runbooks"},
        "approve": {
            **_PRINCIPALS,
            "description": "Who may decide their gates, on top of each gate's own approvers",
        },
        "operate": {
            **_PRINCIPALS,
            "description": "Who may " + ", ".join(OPERATIONS) + " their runs",
        },
        "require": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "committed": {
                    "type": "boolean",
                    "description": "The file is committed and matches its commit",
                },
                "branch": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Its commit is on this branch (local or remote-tracking)",
                },
                "signed": {
                    "type": "boolean",
                    "description": "Its commit's signature verifies against the trust file",
                },
            },
        },
        "windows": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "allow": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Change windows: 'Mon-Fri 08:00-18:00 Europe/Berlin'",
                },
                "freeze": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Freezes, whole days: '2026-12-20/2027-01-04 [Europe/Berlin]'",
                },
                "break_glass": {
                    **_QUORUM,
                    "description": "Outside the windows a start waits for this quorum "
                    "(without it, it is refused)",
                },
            },
        },
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://qlrf.dev/schemas/policy.schema.json",
    "title": "qlrf-run governance policy (QLRF_POLICY)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rules": {
            "type": "array",
            "items": RULE,
            "description": "Every rule that matches a runbook applies to its runs",
        },
        "proposals": {
            "type": "object",
            "required": ["principals", "gate"],
            "additionalProperties": False,
            "description": "Runs started by automation: checked, then stopped for a person",
            "properties": {
                "principals": {**_PRINCIPALS, "minItems": 1},
                "allow_types": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "The step types a proposal may use",
                },
                "max_items": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The most items its fan-outs may hold, all together",
                },
                "forbid": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "Regular expressions over every rendered command, script "
                    "and sql",
                },
                "gate": {**_QUORUM, "description": "The gate put before its first step"},
            },
        },
    },
}
