"""The schema vocabulary shared by step-type definitions and the runbook schema.

Building blocks (a described choice, a duration, a retry policy, timeouts) and the
schema of a definition file itself. The runbook schema (runner.dsl.language) is
built from these and from each registered type's `params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner import durations

# A JSON Schema document, or a fragment of one: its shape is JSON Schema's.
JsonSchema = dict[str, Any]

DRAFT = "http://json-schema.org/draft-07/schema#"
TEMPLATE_PATTERN = r"\{\{"
# A duration, or a template that renders to one at run time. The template
# alternative reads up to the first `{{` one character at a time and cannot
# backtrack into it, so it runs in linear time on any text (editors use it too).
DURATION_PATTERN = durations.PATTERN[:-1] + r"$|^(?:[^{]|\{(?!\{))*\{\{[\s\S]*\}\}"


# What an editor says of a value that does not match (JSON Schema `patternErrorMessage`,
# which yaml-language-server shows instead of the raw regular expression), and what
# `validate` says after quoting the value. One wording for both.
DURATION_MESSAGE = (
    "not a duration; write a number and a unit in falling order, "
    "e.g. 500ms, 30s, 10m, 1h30m, 24h, 7d"
)


def choice(options: Mapping[str, str], description: str) -> JsonSchema:
    """A closed set of strings, each with its own description (shown by editors)."""
    return {
        "description": description,
        "type": "string",
        "enum": list(options),
        "enumDescriptions": list(options.values()),
    }


def duration(description: str, *, template: bool = False) -> JsonSchema:
    """A duration; in `with` it may also be a template that renders to one at run time."""
    pattern = DURATION_PATTERN if template else durations.PATTERN
    return {
        "type": "string",
        "pattern": pattern,
        "patternErrorMessage": DURATION_MESSAGE,
        "description": description,
    }


def template_string(description: str) -> JsonSchema:
    return {"type": "string", "pattern": TEMPLATE_PATTERN, "description": description}


def retry_schema() -> JsonSchema:
    return {
        "type": "object",
        "description": "Retry policy (Temporal's RetryPolicy in snake_case), merged field by field",
        "additionalProperties": False,
        "properties": {
            "max_attempts": {
                "type": "integer",
                "minimum": 0,
                "description": "Attempts in all, including the first; 0 means unlimited",
            },
            "initial_interval": duration("Wait before the first retry"),
            "backoff_coefficient": {
                "type": "number",
                "minimum": 1,
                "description": "Factor by which the wait grows after each retry (>= 1)",
            },
            "max_interval": duration("Longest wait between retries"),
            "non_retryable_errors": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Error types that fail the step at once, e.g. CommandNotFound",
            },
        },
    }


def timeout_schema() -> JsonSchema:
    return {
        "description": "A duration for start_to_close, or each of Temporal's timeouts",
        "oneOf": [
            duration("Longest time one attempt may take (start_to_close)"),
            {
                "type": "object",
                "description": "Temporal's activity timeouts",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "start_to_close": duration("Longest time one attempt may take"),
                    "schedule_to_close": duration("Longest time for all attempts together"),
                    "schedule_to_start": duration("Longest wait for a worker to pick it up"),
                    "heartbeat": duration("Longest silence before an attempt counts as lost"),
                },
            },
        ],
    }


def step_type_schema() -> JsonSchema:
    """The schema of a step-type definition file (definitions/steps/<type>.yaml)."""
    documented: JsonSchema = {
        "type": "object",
        "required": ["description"],
        "properties": {
            "properties": {
                "type": "object",
                "additionalProperties": {"$ref": "#/definitions/documented"},
            },
            "items": {"$ref": "#/definitions/any_schema"},
        },
    }
    timeouts = timeout_schema()["oneOf"][1]
    return {
        "$schema": DRAFT,
        "$id": "https://qlrf.dev/schemas/step-type.schema.json",
        "title": "qlrf-run step-type definition",
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "description", "runs_in", "errors", "params", "output"],
        "properties": {
            "type": {
                "type": "string",
                "pattern": r"^[a-z][a-z0-9_.-]*$",
                "description": "The name runbooks use in `type:`",
            },
            "description": {"type": "string", "description": "One line, shown in editors"},
            "runs_in": choice(
                {
                    "activity": "A Temporal activity on a worker",
                    "workflow": "Evaluated in the workflow itself (timers, checks, gates)",
                    "child_workflow": "A child workflow",
                },
                "Where a step of this type executes",
            ),
            "activity": {"type": "string", "description": "The registered activity's name"},
            "errors": {
                "type": "array",
                "items": {"type": "string", "pattern": r"^[A-Z][A-Za-z0-9]*$"},
                "description": "The ApplicationError types this step can fail with",
            },
            "params": {
                "allOf": [
                    {"$ref": "#/definitions/any_schema"},
                    {
                        "type": "object",
                        "required": ["type", "properties"],
                        "properties": {
                            "type": {"const": "object", "description": "`with` is a mapping"},
                            "properties": {
                                "type": "object",
                                "additionalProperties": {"$ref": "#/definitions/documented"},
                            },
                        },
                    },
                ],
                "description": "JSON Schema of `with`; every property has a description",
            },
            "output": {
                "$ref": "#/definitions/any_schema",
                "description": "JSON Schema of the step's output",
            },
            "retry": retry_schema(),
            "timeout": timeouts,
            "capabilities": capabilities_schema(),
        },
        "allOf": [
            {
                "if": {"properties": {"runs_in": {"const": "activity"}}},
                "then": {"required": ["activity", "retry", "timeout"]},
            },
            {
                "if": {"properties": {"runs_in": {"const": "workflow"}}},
                "then": {
                    "required": ["capabilities"],
                    "properties": {"capabilities": {"required": ["evaluator"]}},
                },
            },
        ],
        "definitions": {
            "any_schema": {"type": "object", "description": "A JSON Schema"},
            "documented": documented,
        },
    }


def capabilities_schema() -> JsonSchema:
    """What a step type may do; the checks and the engine act on these flags alone."""
    return {
        "type": "object",
        "description": "What a step of this type may do (read by validate and the engine)",
        "additionalProperties": False,
        "properties": {
            "fan_out": {
                "type": "boolean",
                "description": "A step of this type may use `foreach` (default false)",
            },
            "script": {
                "type": "string",
                "description": "The `with` key holding a bash script; each {{ }} in it is "
                "passed as an environment variable, never spliced into the code",
            },
            "argv": {
                "type": "string",
                "description": "The `with` key holding a program and its arguments, run "
                "without a shell",
            },
            "drains_store": {
                "type": "boolean",
                "description": "The step reads the run store, which must hold every event "
                "up to its start (default false)",
            },
            "evaluator": choice(
                {
                    "timer": "A durable timer (sleep)",
                    "condition": "A condition checked in the workflow (assert)",
                    "gate": "An approval gate decided by people",
                },
                "For runs_in: workflow: what evaluates the step",
            ),
        },
    }
