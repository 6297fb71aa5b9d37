"""Check a loaded runbook against the published JSON Schema, with positions and advice.

jsonschema reports what failed; an operator needs where and what to do. For a
step, the failed `oneOf` over step types is resolved through the step's own
`type`, so the errors shown are those of the variant the author meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from runner.catalog.vocabulary import DURATION_MESSAGE, DURATION_PATTERN, TEMPLATE_PATTERN
from runner.dsl.diagnostics import Diagnostic
from runner.dsl.document import Document
from runner.dsl.language import (
    IDENT_PATTERN,
    NAME_PATTERN,
    PATTERN_MESSAGES,
    PERCENT_PATTERN,
    STEP_ID_PATTERN,
)
from runner.durations import PATTERN as DURATION_STRICT
from runner.suggest import hint

_JSON_TYPES = {
    dict: "a mapping",
    list: "a list",
    str: "text",
    bool: "true/false",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _fits(json_type: Any, value: Any) -> bool:
    """Whether `value` has the JSON type `json_type` (a branch without a type fits all)."""
    if json_type is None:
        return True
    types = json_type if isinstance(json_type, list) else [json_type]
    for t in types:
        if t == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if t not in ("integer", "number") and type(value) is _PY.get(t):
            return True
    return False


def _describe(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return kind
    shown = json.dumps(value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"


class SchemaChecker:
    """Holds one compiled validator; reuse it for every file (building it is the slow part)."""

    def __init__(self, schema: Mapping[str, Any], step_types: list[str]) -> None:
        self.schema = schema
        self.step_types = step_types
        # The published schema selects a step's variant with a oneOf over every type,
        # which validates each step nine times over. The variant is fixed by the
        # step's `type` const, so the same verdict comes from checking the document
        # with steps as plain objects, then each step against its own variant only.
        defs = schema["definitions"]
        fast_defs = {**defs, "step": {"type": "object"}, "compensate": {"type": "object"}}
        self.validator = jsonschema.Draft7Validator({**schema, "definitions": fast_defs})
        self._variants = {
            kind: {
                v["properties"]["type"]["const"]: jsonschema.Draft7Validator(
                    {**v, "definitions": fast_defs}
                )
                for v in (rule["then"] for rule in defs[kind]["allOf"])
            }
            for kind in ("step", "compensate")
        }

    def check(self, doc: Document) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for error in self.validator.iter_errors(doc.data):
            out.extend(self._translate(doc, error, ()))
        data = doc.data if isinstance(doc.data, dict) else {}
        for section in ("steps", "finally"):
            items = data.get(section)
            for i, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict):
                    self._check_variant(doc, "step", item, (section, i), out)
        return out

    def _check_variant(
        self,
        doc: Document,
        kind: str,
        inst: dict[str, Any],
        prefix: tuple[Any, ...],
        out: list[Diagnostic],
    ) -> None:
        name = inst.get("type")
        if name is None:
            out.append(
                doc.diag(
                    prefix,
                    "missing-key",
                    f"missing required key 'type'; choose one of: {', '.join(self.step_types)}",
                    on_key=True,
                )
            )
        elif not isinstance(name, str) or name not in self._variants[kind]:
            if isinstance(name, str):
                msg = (
                    f"unknown step type '{name}'{hint(name, self.step_types)}; "
                    f"known types: {', '.join(self.step_types)}"
                )
            else:
                msg = f"type must be text naming a step type, got {_describe(name)}"
            out.append(doc.diag((*prefix, "type"), "unknown-type", msg))
        else:
            for error in self._variants[kind][name].iter_errors(inst):
                out.extend(self._translate(doc, error, prefix))
        compensate = inst.get("compensate")
        if kind == "step" and isinstance(compensate, dict):
            self._check_variant(doc, "compensate", compensate, (*prefix, "compensate"), out)

    # -- translation --------------------------------------------------------------------

    def _translate(
        self, doc: Document, error: ValidationError, prefix: tuple[Any, ...]
    ) -> Iterator[Diagnostic]:
        path = (*prefix, *error.absolute_path)
        where = path[-1] if path else None
        v = error.validator
        inst = error.instance
        schema = error.schema if isinstance(error.schema, dict) else {}

        own = schema.get("patternErrorMessage")
        if "propertyNames" in error.schema_path and own and own != PATTERN_MESSAGES[IDENT_PATTERN]:
            # A key that may not stand beside another one (a step type's own rule).
            yield doc.diag((*path, inst), "conflicting-keys", f"'{inst}': {own}", on_key=True)
            return
        if "propertyNames" in error.schema_path:
            yield doc.diag(
                (*path, inst),
                "invalid-name",
                f"'{inst}' is not a valid name here; use letters, digits and '_', "
                "starting with a letter (templates refer to it as a Python-like name)",
                on_key=True,
            )
            return
        if v in ("oneOf", "anyOf"):
            yield from self._union(doc, error, path, prefix)
            return
        if v == "additionalProperties" and isinstance(inst, dict):
            allowed = sorted(schema.get("properties", {}))
            patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
            extra = {k for k in inst if k not in allowed and not any(p.search(k) for p in patterns)}
            for key in sorted(extra):
                yield doc.diag(
                    (*path, key),
                    "unknown-key",
                    f"unknown key '{key}'{hint(key, allowed)}; allowed here: {', '.join(allowed)}",
                    on_key=True,
                )
            return
        if v == "required" and isinstance(inst, dict):
            for key in error.validator_value:
                if key not in inst:
                    yield doc.diag(
                        path,
                        "missing-key",
                        f"missing required key '{key}'; add it here",
                        on_key=True,
                    )
            return
        if v == "type":
            expected = error.validator_value
            expected = expected if isinstance(expected, list) else [expected]
            names = " or ".join(str(_JSON_TYPES.get(_PY.get(t, str), t)) for t in expected)
            yield doc.diag(
                path, "wrong-type", f"expected {names}, got {_describe(inst)}; change the value"
            )
            return
        if v == "pattern":
            yield self._pattern(doc, path, inst, error.validator_value, error.schema)
            return
        if v == "const":
            yield doc.diag(
                path,
                "invalid-value",
                f"must be {json.dumps(error.validator_value)}, got {_describe(inst)}",
            )
            return
        if v == "enum":
            options = [str(o) for o in error.validator_value]
            shown = hint(str(inst), options)
            yield doc.diag(
                path,
                "invalid-value",
                f"{_describe(inst)} is not allowed{shown}; use one of: {', '.join(options)}",
            )
            return
        if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            code = "retry-range" if "retry" in path else "out-of-range"
            bound = {
                "minimum": ">=",
                "maximum": "<=",
                "exclusiveMinimum": ">",
                "exclusiveMaximum": "<",
            }[v]
            yield doc.diag(
                path,
                code,
                f"{where} must be {bound} {error.validator_value}, got {inst}; change the value",
            )
            return
        if v == "minItems":
            yield doc.diag(
                path, "empty", f"needs at least {error.validator_value} item(s); add one"
            )
            return
        if v == "minProperties":
            yield doc.diag(path, "empty", "must not be empty; set at least one key")
            return
        if v == "uniqueItems":
            yield doc.diag(path, "duplicate-item", "lists the same value twice; remove one")
            return
        if v == "not":
            keys = (
                error.validator_value.get("required", [])
                if isinstance(error.validator_value, dict)
                else []
            )
            if keys:
                yield doc.diag(
                    path,
                    "conflicting-keys",
                    f"set only one of: {', '.join(keys)}; they cannot be used together",
                )
                return
        yield doc.diag(path, "schema", f"{error.message}")

    def _union(
        self,
        doc: Document,
        error: ValidationError,
        path: tuple[Any, ...],
        prefix: tuple[Any, ...],
    ) -> Iterator[Diagnostic]:
        inst = error.instance
        branches = error.validator_value
        consts = [b["const"] for b in branches if isinstance(b, dict) and "const" in b]
        if consts and len(consts) == len(branches):
            options = [str(c) for c in consts]
            yield doc.diag(
                path,
                "invalid-value",
                f"{_describe(inst)} is not allowed{hint(str(inst), options)}; "
                f"use one of: {', '.join(options)}",
            )
            return
        required_sets = [b.get("required") for b in branches if isinstance(b, dict)]
        if all(required_sets) and isinstance(inst, dict):
            keys = [r[0] for r in required_sets if r]
            yield doc.diag(
                path,
                "one-of-keys",
                f"set exactly one of: {', '.join(keys)}",
                on_key=True,
            )
            return
        # Follow the branch the author meant: a template branch for text with `{{`, else
        # the one branch whose JSON type fits the value (`10mins` under a timeout is a
        # bad duration, not "expected a mapping").
        context = list(error.context or [])
        is_template = isinstance(inst, str) and "{{" in inst
        meant = [
            i
            for i, b in enumerate(branches)
            if isinstance(b, dict)
            and (b.get("pattern") == TEMPLATE_PATTERN) == is_template
            and _fits(b.get("type"), inst)
        ]
        if len(meant) == 1:
            picked = [e for e in context if e.relative_schema_path[0] == meant[0]]
            if picked:
                for sub in picked:
                    yield from self._translate(doc, sub, prefix)
                return
        if context:
            best = jsonschema.exceptions.best_match(context)
            if best is not None:
                yield from self._translate(doc, best, prefix)
                return
        yield doc.diag(path, "schema", error.message)

    def _pattern(
        self, doc: Document, path: tuple[Any, ...], inst: Any, pattern: str, schema: Any = None
    ) -> Diagnostic:
        text = str(inst)
        inst = text if len(text) <= 60 else text[:57] + "..."  # quoted in the message
        if pattern in (DURATION_PATTERN, DURATION_STRICT):
            return doc.diag(path, "invalid-duration", f"'{inst}' is {DURATION_MESSAGE}")
        codes = {
            NAME_PATTERN: "invalid-name",
            STEP_ID_PATTERN: "invalid-id",
            IDENT_PATTERN: "invalid-name",
            PERCENT_PATTERN: "wave-size",
        }
        if pattern in codes:
            return doc.diag(path, codes[pattern], f"'{inst}' is {PATTERN_MESSAGES[pattern]}")
        own = schema.get("patternErrorMessage") if isinstance(schema, dict) else None
        if own:  # a step type's own wording
            return doc.diag(path, "invalid-value", f"'{inst}': {own}")
        return doc.diag(path, "invalid-value", f"'{inst}' does not match the pattern {pattern}")


class DocumentChecker(SchemaChecker):
    """A document with no steps (a test file), checked against its schema as a whole,
    with the same positions and advice."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.step_types = []
        self.validator = jsonschema.Draft7Validator(schema)
        self._variants = {}

    def check(self, doc: Document) -> list[Diagnostic]:
        return [
            d for e in self.validator.iter_errors(doc.data) for d in self._translate(doc, e, ())
        ]


_PY = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": float,
    "null": type(None),
}
