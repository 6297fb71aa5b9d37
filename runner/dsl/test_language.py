"""The language of runbook tests (`kind: Test`, NAME.test.yaml) as JSON Schema.

A test file names one runbook and lists cases: the inputs, what each activity step
answers (mocks), who decides the gates and when, what operators do, and what the run
must end with. It is part of the runbook schema (runner/dsl/language.py), selected by
`kind: Test`, so that editors complete it like a runbook.
"""

from __future__ import annotations

from typing import Any

from runner.catalog.vocabulary import JsonSchema, choice, duration

TEST_KIND = "Test"


def is_test_document(data: Any) -> bool:
    """Whether loaded YAML is a test file (`kind: Test`) rather than a runbook."""
    return isinstance(data, dict) and data.get("kind") == TEST_KIND


MATCHERS = {
    "eq": "Equal to this value (any JSON, a mapping or a list too)",
    "lt": "A number below this one",
    "le": "A number at most this one",
    "gt": "A number above this one",
    "ge": "A number at least this one",
    "contains": "Text holding this text, or a list holding this item",
    "matches": "Text matching this regular expression (Python syntax, searched)",
}
RUN_ENDS = {
    "succeeded": "Every step succeeded or was skipped as written",
    "failed": "A step failed (after its retries) and the run failed",
    "cancelled": "The run was cancelled (a `cancel` control)",
    "timed_out": "The run's own `timeout` passed",
}
STEP_ENDS = {
    "succeeded": "The step succeeded",
    "failed": "The step failed after its attempts",
    "skipped": "The step did not run (`when` false, or its needs did not allow it)",
    "cancelled": "The step was stopped (the run was cancelled or failed meanwhile)",
    "pending": "The step never started",
}
DECISIONS = {
    "approve": "Approve the gate",
    "reject": "Reject the gate: the approval step fails",
    "modify": "Change inputs named in the gate's `modifiable` (with `set`) and ask again",
}
CONTROLS = {
    "pause": "Pause the run: nothing new starts",
    "resume": "Resume a paused run",
    "skip": "Leave items of a fan-out out (`step`, `items`)",
    "concurrency": "Set a fan-out's items at once (`step`, `concurrency`)",
    "cancel": "Cancel the run: compensations and finally still run",
}
ERROR_TYPE = r"^[A-Za-z][A-Za-z0-9_.]*$"
PERSON = {"type": "string", "minLength": 1, "description": "Who does it, as approvers name people"}


def _matcher() -> JsonSchema:
    """A value compared for equality, or a mapping of matchers (all must hold)."""
    props: JsonSchema = {name: {"description": text} for name, text in MATCHERS.items()}
    for name in ("lt", "le", "gt", "ge"):
        props[name]["type"] = "number"
    props["matches"]["type"] = "string"
    return {
        "description": "The value it must have, or matchers (eq, lt, le, gt, ge, contains, "
        "matches); compare with a mapping through `eq`",
        "anyOf": [
            {
                "type": "object",
                "description": "Matchers, every one of which must hold",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": props,
            },
            {"not": {"type": "object"}, "description": "Exactly this value"},
        ],
    }


def _failure() -> JsonSchema:
    return {
        "type": "object",
        "description": "How the attempt fails: the step's error type and message",
        "additionalProperties": False,
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "pattern": ERROR_TYPE,
                "patternErrorMessage": "an error type is a name such as CommandFailed",
                "description": "The error type, e.g. CommandFailed, HttpStatus, StepTimedOut",
            },
            "message": {"type": "string", "description": "The error's message"},
            "retry": {
                "type": "boolean",
                "description": "false: not retried, whatever the step's retry policy says",
            },
        },
    }


def _outcome_props() -> JsonSchema:
    return {
        "output": {"description": "The step's output, as its type returns it (e.g. stdout)"},
        "fail": {"$ref": "#/definitions/test_failure"},
        "times": {
            "type": "integer",
            "minimum": 1,
            "description": "Fail only the first N attempts; `then` says what follows",
        },
        "then": {"$ref": "#/definitions/test_outcome"},
    }


def _outcome() -> JsonSchema:
    return {
        "type": "object",
        "description": "What an attempt answers: an `output`, or a `fail` (for `times`)",
        "additionalProperties": False,
        "properties": _outcome_props(),
    }


def _mock() -> JsonSchema:
    return {
        "type": "object",
        "description": "What the step answers in this case instead of running",
        "additionalProperties": False,
        "properties": {
            **_outcome_props(),
            "items": {
                "type": "object",
                "description": "A fan-out's items by name, each with its own answer",
                "additionalProperties": {"$ref": "#/definitions/test_outcome"},
            },
            "default": {"$ref": "#/definitions/test_outcome"},
            "compensate": {"$ref": "#/definitions/test_outcome"},
        },
    }


def _decision() -> JsonSchema:
    return {
        "type": "object",
        "description": "A decision at a gate, some time after the gate opened",
        "additionalProperties": False,
        "required": ["gate", "decision", "by"],
        "properties": {
            "gate": {
                "type": "string",
                "description": "The approval step's id, or STEP/WAVE for a wave's gate",
            },
            "after": duration("How long after the gate opened (simulated time; 0s if unset)"),
            "by": PERSON,
            "decision": choice(DECISIONS, "approve, reject or modify"),
            "set": {
                "type": "object",
                "description": "modify: the inputs to change, with their new values",
                "minProperties": 1,
            },
            "comment": {"type": "string", "description": "The decision's comment"},
        },
    }


def _control() -> JsonSchema:
    return {
        "type": "object",
        "description": "What an operator does to the run, some time after it started",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {
            "action": choice(CONTROLS, "pause, resume, skip, concurrency or cancel"),
            "at": duration("How long after the run started (simulated time; 0s if unset)"),
            "by": PERSON,
            "step": {"type": "string", "description": "skip, concurrency: the fan-out step"},
            "items": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "skip: the names of the items to leave out",
            },
            "concurrency": {
                "type": "integer",
                "minimum": 1,
                "description": "concurrency: the items at once",
            },
            "comment": {"type": "string", "description": "Why"},
        },
    }


def _step_expect() -> JsonSchema:
    status = choice(STEP_ENDS, "How the step ended")
    return {
        "description": "How the step ended, or its status, attempts, output, error and items",
        "anyOf": [
            status,
            {
                "type": "object",
                "description": "The step's end in detail",
                "additionalProperties": False,
                "properties": {
                    "status": status,
                    "attempts": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Attempts it took, the last one included",
                    },
                    "output": {
                        "type": "object",
                        "description": "Keys of its output, each a value or matchers",
                        "additionalProperties": {"$ref": "#/definitions/test_matcher"},
                    },
                    "error": {
                        "type": "string",
                        "description": "The type of the error it ended with",
                    },
                    "items": {
                        "type": "object",
                        "description": "A fan-out's items by name, and how each ended",
                        "additionalProperties": status,
                    },
                },
            },
        ],
    }


def _audit() -> JsonSchema:
    return {
        "type": "object",
        "description": "An audit event, in order among those listed; other events may come between",
        "additionalProperties": False,
        "required": ["event"],
        "properties": {
            "event": {
                "type": "string",
                "description": "The audit action, e.g. gate_decided, run_paused, run_finished",
            },
            "actor": {"type": "string", "description": "Who did it"},
            "gate": {"type": "string", "description": "The gate it is about"},
            "step": {"type": "string", "description": "The step it is about"},
            "notification": {
                "type": "string",
                "description": "For notification_sent and notification_failed: the event "
                "notified, e.g. gate_reminder (a test sends nothing; it records each)",
            },
        },
    }


def _expect() -> JsonSchema:
    return {
        "type": "object",
        "description": "How the run must end; only what is listed is checked",
        "additionalProperties": False,
        "properties": {
            "status": choice(RUN_ENDS, "How the run ended"),
            "steps": {
                "type": "object",
                "description": "Steps by id (CHILD.STEP inside a child runbook)",
                "additionalProperties": {"$ref": "#/definitions/test_step_expect"},
            },
            "compensated": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The steps whose compensation ran, in the order they ran",
            },
            "outputs": {
                "type": "object",
                "description": "The run's outputs by name, each a value or matchers",
                "additionalProperties": {"$ref": "#/definitions/test_matcher"},
            },
            "audit": {
                "type": "array",
                "items": {"$ref": "#/definitions/test_audit"},
                "description": "Audit events that must happen, in this order",
            },
            "error": {"type": "string", "description": "The type of the run's error"},
        },
    }


def _case() -> JsonSchema:
    return {
        "title": "a test case",
        "type": "object",
        "description": "One case: inputs, mocks, decisions, controls and what to expect",
        "additionalProperties": False,
        "required": ["name", "expect"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "What the case shows"},
            "inputs": {"type": "object", "description": "The run's inputs ({name: value})"},
            "started_by": {**PERSON, "description": "Who starts the run (tester if unset)"},
            "mocks": {
                "type": "object",
                "description": "Activity steps by id (CHILD.STEP inside a child runbook), "
                "each with what it answers",
                "additionalProperties": {"$ref": "#/definitions/test_mock"},
            },
            "decisions": {
                "type": "array",
                "items": {"$ref": "#/definitions/test_decision"},
                "description": "Decisions at gates; a gate with none waits out its timeout",
            },
            "controls": {
                "type": "array",
                "items": {"$ref": "#/definitions/test_control"},
                "description": "pause, resume, skip, concurrency and cancel, at a time",
            },
            "expect": {"$ref": "#/definitions/test_expect"},
        },
    }


def suite_schema() -> JsonSchema:
    """The root of a test file."""
    return {
        "title": "qlrf-run test file",
        "type": "object",
        "description": "Cases that run a runbook in simulated time: `qlrf-run test`",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "runbook", "cases"],
        # x-* keys hold YAML anchors shared by cases, as in a runbook.
        "patternProperties": {
            "^x-": {"description": "Free-form: a place for YAML anchors; ignored by qlrf-run"}
        },
        "properties": {
            "apiVersion": {
                "type": "string",
                "const": "qlrf/v1",
                "description": "The language version; always qlrf/v1",
            },
            "kind": {
                "type": "string",
                "const": TEST_KIND,
                "description": "A test file of a runbook",
            },
            "runbook": {
                "type": "string",
                "minLength": 1,
                "description": "The runbook under test, relative to this file",
            },
            "description": {"type": "string", "description": "What these cases cover"},
            "groups": {
                "type": "object",
                "description": "Members of the groups gates name ({group: [person]})",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "cases": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/definitions/test_case"},
                "description": "The cases; each runs the runbook once",
            },
        },
    }


def suite_definitions() -> dict[str, JsonSchema]:
    return {
        "test": suite_schema(),
        "test_case": _case(),
        "test_mock": _mock(),
        "test_outcome": _outcome(),
        "test_failure": _failure(),
        "test_decision": _decision(),
        "test_control": _control(),
        "test_expect": _expect(),
        "test_step_expect": _step_expect(),
        "test_matcher": _matcher(),
        "test_audit": _audit(),
    }
