"""Read the worker's QLRF_SECRETS_CONFIG: YAML checked against its own JSON Schema
(schemas/secrets-config.schema.json), with every problem named by file, line and key.

The worker reads it once as it starts and refuses to start on a bad one, so that no
run meets a misconfigured vault halfway through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from runner.dsl.diagnostics import Diagnostic, path_str
from runner.dsl.document import Document
from runner.dsl.loader import load_file
from runner.errors import QlrfError
from runner.suggest import hint
from runner.vault.config import NoAddress, SecretsConfig, from_data
from runner.vault.schema import SCHEMA

VARIABLE = "QLRF_SECRETS_CONFIG"
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
_METHODS = [
    v["properties"]["method"]["const"]
    for v in SCHEMA["properties"]["vault"]["properties"]["auth"]["oneOf"]
]


class SecretsConfigError(QlrfError):
    """The file cannot be used; the message lists each problem and where it is."""


def load(path: str | None = None) -> SecretsConfig | None:
    """The configuration QLRF_SECRETS_CONFIG names; None when the variable is unset."""
    path = path if path is not None else os.environ.get(VARIABLE)
    if not path:
        return None
    doc = load_file(path, start_from="give its vault: and secrets: keys (docs/secrets.md)")
    problems = list(doc.diagnostics)
    if not problems:
        problems = sorted(set(check(doc)))
    if problems:
        shown = "\n".join(f"  {p.text()}" for p in problems[:20])
        raise SecretsConfigError(f"{VARIABLE} names a file the worker cannot use:\n{shown}")
    try:
        return from_data(doc.data, path)
    except NoAddress as exc:
        line, column = doc.key_at(("vault",))
        raise SecretsConfigError(f"{VARIABLE}: {path}:{line}:{column}: {exc}") from None


def check(doc: Document) -> Iterator[Diagnostic]:
    for error in _VALIDATOR.iter_errors(doc.data):
        yield from translate(doc, error)


def translate(doc: Document, error: ValidationError) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(schema.get("properties") or {})
        for key in sorted(set(error.instance) - set(known)):
            yield doc.diag(
                (*path, key),
                "unknown-key",
                f"unknown key '{key}'{hint(key, known)}; known keys: {', '.join(known)}",
                on_key=True,
            )
        return
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        yield doc.diag(path, "missing-key", f"missing required key '{missing}'", on_key=True)
        return
    if error.validator == "oneOf" and path[-1:] == ("auth",):
        yield from _auth(doc, error, path)
        return
    if error.validator == "pattern" and "patternErrorMessage" in schema:
        yield doc.diag(path, "bad-value", f"{error.instance!r}: {schema['patternErrorMessage']}")
        return
    yield doc.diag(path, "bad-value", f"{path_str(path)}: {error.message}")


def _auth(doc: Document, error: ValidationError, path: tuple[Any, ...]) -> Iterator[Diagnostic]:
    """The errors of the variant the `method` names, not of all three."""
    auth = error.instance
    method = auth.get("method") if isinstance(auth, dict) else None
    if method not in _METHODS:
        yield doc.diag(
            (*path, "method") if isinstance(auth, dict) and "method" in auth else path,
            "bad-value",
            (f"unknown auth method {method!r}; " if method is not None else "auth needs a method; ")
            + f"give one of: {', '.join(_METHODS)}",
        )
        return
    variant = next(v for v in error.schema["oneOf"] if v["properties"]["method"]["const"] == method)
    for inner in jsonschema.Draft202012Validator(variant).iter_errors(auth):
        inner.path.extendleft(reversed(path))
        yield from translate(doc, inner)
