"""The runbook language as JSON Schema (draft-07), generated from code and step types.

The same schema validates files in `qlrf-run validate` and drives editor
autocomplete, so every property and every constant carries a description.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from runner.catalog.step_type import StepType
from runner.catalog.vocabulary import (
    DRAFT,
    JsonSchema,
    choice,
    duration,
    retry_schema,
    template_string,
    timeout_schema,
)
from runner.contract import LOCK_KEY_LIMIT
from runner.contract.vocab import NotifyEvent
from runner.dsl.test_language import TEST_KIND, suite_definitions

API_VERSION = "qlrf/v1"
KINDS = {
    "Campaign": "A rollout over a fleet: canary, staged, fleet",
    "Drill": "A disaster-recovery drill: provision, validate, measure RTO",
    "Runbook": "A general operational procedure",
    "Task": "A single task, often proposed by an AI agent for human approval",
}
INPUT_TYPES = {
    "string": "Text",
    "integer": "A whole number",
    "number": "Any number",
    "boolean": "true or false",
    "array": "A list (JSON on the command line)",
    "object": "A mapping (JSON on the command line)",
    "duration": "A duration such as 30s, 10m, 1h30m, 7d",
}
TRIGGER_RULES = {
    "all_succeeded": "Run when every need succeeded (default)",
    "all_done": "Run when every need finished, whatever its status",
    "one_failed": "Run when at least one need failed",
    "always": "Run when every need finished, even while the run is failing",
}
ON_FAILURE = {
    "fail": "Fail the run: stop new steps, compensate, run finally (default)",
    "continue": "Record the failure and go on; dependents see the step as failed",
}
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]*$"
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"
# What an editor shows for a value that misses its pattern (and `validate` says after
# quoting the value); see vocabulary.DURATION_MESSAGE.
PATTERN_MESSAGES = {
    NAME_PATTERN: "not a valid name; use 1-63 lowercase letters, digits and '-', "
    "starting with a letter or digit",
    STEP_ID_PATTERN: "not a valid id; start with a lowercase letter and use lowercase "
    "letters, digits, '_' and '-'",
    IDENT_PATTERN: "not a valid name; start with a letter or '_' and use letters, digits "
    "and '_' (templates read it as inputs.NAME)",
    PERCENT_PATTERN: "not a count or a percentage such as 10%",
}


def patterned(pattern: str, description: str) -> JsonSchema:
    """A string that must match `pattern`, with the editor's message when it does not."""
    return {
        "type": "string",
        "pattern": pattern,
        "patternErrorMessage": PATTERN_MESSAGES[pattern],
        "description": description,
    }


def _with_templates(schema: Mapping[str, Any]) -> JsonSchema:
    """Let each non-text parameter also be a template that renders to its type."""
    out = copy.deepcopy(dict(schema))
    props = out.get("properties", {})
    for name, prop in list(props.items()):
        if prop.get("format") == "duration":
            props[name] = duration(prop["description"], template=True)
        elif prop.get("type") != "string":
            description = prop.get("description", "")
            inner = {k: v for k, v in prop.items() if k != "description"}
            props[name] = {
                "description": description,
                "anyOf": [inner, template_string("A template that renders to this value")],
            }
    out["additionalProperties"] = False
    return out


def _budget(description: str) -> JsonSchema:
    return {
        "description": description,
        "oneOf": [
            {"type": "integer", "minimum": 0, "description": "A count of items"},
            patterned(PERCENT_PATTERN, "N% of the wave"),
        ],
    }


def _common_step_props() -> JsonSchema:
    wave = {
        "type": "object",
        "description": "One wave of a fan-out",
        "additionalProperties": False,
        "required": ["size"],
        "properties": {
            "name": patterned(STEP_ID_PATTERN, "Wave name"),
            "size": {
                "description": "Cumulative items done by the end of this wave: a count or N%",
                "oneOf": [
                    {"type": "integer", "description": "A count of items"},
                    patterned(PERCENT_PATTERN, "A percentage of the list, rounded up"),
                ],
            },
            "approval": {"type": "boolean", "description": "Wait for approval before the wave"},
            "pause": duration("Wait this long before the wave starts"),
            "approvers": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Who may approve this wave (users and group:NAME)",
            },
            "min_approvals": {"type": "integer", "minimum": 1, "description": "Quorum"},
            "timeout": duration("How long the wave's gate waits (default 24h)"),
            "max_failures": _budget(
                "This wave's failure budget: a count or a percentage of the wave "
                "(default: the step's; 0 for the first wave)"
            ),
        },
    }
    return {
        "id": patterned(STEP_ID_PATTERN, "Unique step id: lowercase letters, digits, _ and -"),
        "name": {"type": "string", "description": "Shown in progress output and the Temporal UI"},
        "needs": {
            "type": "array",
            "items": {"type": "string"},
            "uniqueItems": True,
            "description": "Steps this one waits for; [] starts at once (default: the step above)",
        },
        "when": {
            "description": "A template; false skips the step",
            "anyOf": [
                {"type": "boolean", "description": "A constant"},
                template_string("A template"),
            ],
        },
        "trigger_rule": choice(TRIGGER_RULES, "When the step may run, given its needs"),
        "retry": retry_schema(),
        "timeout": timeout_schema(),
        "on_failure": choice(ON_FAILURE, "What a failure of this step does to the run"),
        "locks": locks_schema("the step"),
        "foreach": {
            "description": "Run the step once per item of this list",
            "anyOf": [
                {"type": "array", "description": "A literal list"},
                template_string("A template giving a list"),
                {
                    "type": "object",
                    "description": "Items read from a file on the worker, page by page, "
                    "for fleets too large to pass as an input (docs/campaigns.md)",
                    "additionalProperties": False,
                    "required": ["from_file"],
                    "properties": {
                        "from_file": {
                            "type": "string",
                            "minLength": 1,
                            "description": "The inventory file's path on the worker; "
                            "may be a template over inputs, e.g. {{ inputs.inventory }}",
                        },
                        "format": choice(
                            {
                                "lines": "One item per line, as text; blank lines and "
                                "# comments are left out (the default)",
                                "json": "A JSON array, or one JSON value per line",
                                "yaml": "A YAML list",
                            },
                            "How the file lists its items",
                        ),
                    },
                },
            ],
        },
        "as": patterned(IDENT_PATTERN, "The loop variable's name (default item)"),
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "description": "Items running at once (also bounded by the run's concurrency)",
        },
        "waves": {
            "type": "array",
            "minItems": 1,
            "items": wave,
            "description": "Roll out in waves; sizes are cumulative and must grow",
        },
        "max_failures": _budget(
            "Failure budget of each wave after the first (a count or a percentage of the "
            "wave), unless the wave sets its own; the first wave's default is 0"
        ),
    }


def locks_schema(holder: str) -> JsonSchema:
    """`locks:` on the run or on a step (docs/locks.md)."""
    return {
        "type": "array",
        "uniqueItems": True,
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": LOCK_KEY_LIMIT,
            "description": "A lock key; a template over inputs and run fields, "
            "e.g. db:{{ inputs.cluster }}",
        },
        "description": f"Lock keys {holder} holds while it runs: one holder per key at a "
        "time, others wait in line (first come, first served)",
    }


def _type_const(step_type: StepType) -> JsonSchema:
    return {"const": step_type.type, "description": step_type.description}


def _variant(step_type: StepType, common: Mapping[str, Any]) -> JsonSchema:
    params = _with_templates(step_type.params)
    params["description"] = f"Parameters of a {step_type.type} step"
    props = dict(common)
    props["type"] = _type_const(step_type)
    props["with"] = params
    props["compensate"] = {"$ref": "#/definitions/compensate"}
    required = ["id", "type"]
    if params.get("required") or params.get("oneOf"):
        required.append("with")
    return {
        "title": f"{step_type.type}: {step_type.description}",
        "description": step_type.description,
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": props,
    }


def _selected(description: str, variants: list[JsonSchema], types: list[StepType]) -> JsonSchema:
    """An object whose `type` (one of the registered types) selects its variant.

    `type` is an enum with a description per type, so editors offer and explain
    each one and name every choice for a typo; each variant then applies through
    if/then, so the other types' keys never show up in a step's errors.
    """
    names = [t.type for t in types]
    return {
        "description": description,
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "enum": names,
                "enumDescriptions": [t.description for t in types],
                "description": "The step type: what the step does, and what `with` takes",
                "errorMessage": "unknown step type; use one of: " + ", ".join(names),
            }
        },
        "allOf": [
            {
                "if": {
                    "properties": {"type": {"const": t.type, "description": t.description}},
                    "required": ["type"],
                },
                "then": variant,
            }
            for t, variant in zip(types, variants, strict=True)
        ],
    }


def _compensate_variant(step_type: StepType) -> JsonSchema:
    params = _with_templates(step_type.params)
    params["description"] = f"Parameters of the {step_type.type} compensation"
    required = ["type"] + (["with"] if params.get("required") or params.get("oneOf") else [])
    return {
        "title": f"{step_type.type} compensation",
        "description": step_type.description,
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {
            "name": {"type": "string", "description": "Shown in progress output"},
            "type": _type_const(step_type),
            "with": params,
            "retry": retry_schema(),
            "timeout": timeout_schema(),
        },
    }


def _input_schema() -> JsonSchema:
    type_names = list(INPUT_TYPES)
    return {
        "type": "object",
        "description": "An input of the runbook",
        "additionalProperties": False,
        "required": ["type"],
        "properties": {
            "type": choice(INPUT_TYPES, "The input's type, checked before the run starts"),
            "description": {"type": "string", "description": "What the input means"},
            "default": {"description": "Value used when none is given"},
            "required": {"type": "boolean", "description": "The run needs a value"},
            "enum": {"type": "array", "minItems": 1, "description": "The only allowed values"},
            "items": {
                "type": "object",
                "description": "For arrays: the type of each item",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": type_names,
                        "description": "The item type",
                    }
                },
            },
        },
    }


NOTIFY_ROUTE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["on", "to"],
    "properties": {
        "on": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": [event.value for event in NotifyEvent]},
            "description": "The events: run_started, gate_waiting, run_failed, ...",
        },
        "to": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": "Channel names, as the worker's QLRF_NOTIFY_CONFIG names them",
        },
    },
}


def runbook_schema(step_types: Iterable[StepType]) -> JsonSchema:
    """The published schema of a runbook file, with one step variant per step type."""
    types = sorted(step_types, key=lambda t: t.type)
    common = _common_step_props()
    step_ref = {"$ref": "#/definitions/step"}
    runbook: JsonSchema = {
        "title": "qlrf-run runbook",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "name", "steps"],
        # x-* keys hold YAML anchors shared by steps (as in docker-compose files).
        "patternProperties": {
            "^x-": {"description": "Free-form: a place for YAML anchors; ignored by qlrf-run"}
        },
        "properties": {
            "apiVersion": {
                "type": "string",
                "const": API_VERSION,
                "description": "The language version; always qlrf/v1",
            },
            # Test is offered too: once chosen, the root selects the test file's schema.
            "kind": choice(
                {**KINDS, TEST_KIND: "A test file of a runbook (NAME.test.yaml): qlrf-run test"},
                "What sort of runbook this is (shown in lists, searchable)",
            ),
            "name": patterned(
                NAME_PATTERN, "Runbook name: lowercase letters, digits and -, up to 63"
            ),
            "description": {"type": "string", "description": "What the runbook does"},
            "labels": {
                "type": "object",
                "description": "Free-form labels, e.g. team: payments",
                "additionalProperties": {"type": "string"},
            },
            "inputs": {
                "type": "object",
                "description": "Values given at apply time (--input k=v)",
                "propertyNames": {
                    "pattern": IDENT_PATTERN,
                    "patternErrorMessage": PATTERN_MESSAGES[IDENT_PATTERN],
                },
                "additionalProperties": {"$ref": "#/definitions/input"},
            },
            "defaults": {
                "type": "object",
                "description": "Retry and timeout for every step unless the step overrides",
                "additionalProperties": False,
                "properties": {"retry": retry_schema(), "timeout": timeout_schema()},
            },
            "concurrency": {
                "type": "integer",
                "minimum": 1,
                "description": "Most steps (and fan-out items) running at once in this run",
            },
            "timeout": duration("Deadline of the whole run"),
            "locks": locks_schema("the run"),
            "notify": {
                "type": "array",
                "description": "More notification routes for this runbook's runs: events to "
                "channels of the worker's QLRF_NOTIFY_CONFIG",
                "items": NOTIFY_ROUTE,
            },
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": step_ref,
                "description": "The steps; each waits for the one above unless it has needs",
            },
            "finally": {
                "type": "array",
                "items": step_ref,
                "description": "Steps that always run after the steps end, even after a cancel",
            },
            "outputs": {
                "type": "object",
                "description": "The run's result: templates over inputs and step outputs",
                "propertyNames": {
                    "pattern": IDENT_PATTERN,
                    "patternErrorMessage": PATTERN_MESSAGES[IDENT_PATTERN],
                },
            },
        },
    }
    return {
        "$schema": DRAFT,
        "$id": "https://qlrf.dev/schemas/runbook.schema.json",
        "title": "qlrf-run runbook",
        "description": "A runbook: validated by `qlrf-run validate`, run by `qlrf-run apply`; "
        "or, with kind: Test, its test cases, run by `qlrf-run test`",
        # `kind: Test` selects the test file's schema (a kind not yet written, the runbook's).
        "if": {
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"type": "string", "const": TEST_KIND, "description": "A test file"}
            },
        },
        "then": {"$ref": "#/definitions/test"},
        "else": {"$ref": "#/definitions/runbook"},
        "definitions": {
            "runbook": runbook,
            **suite_definitions(),
            "input": _input_schema(),
            "step": _selected(
                "A step; its `type` selects the keys allowed in `with`",
                [_variant(t, common) for t in types],
                types,
            ),
            "compensate": _selected(
                "Undo this step if the run fails after it succeeded",
                [_compensate_variant(t) for t in types],
                types,
            ),
        },
    }
