"""The schema files as committed under schemas/ and shipped in the wheel."""

from __future__ import annotations

import json
from pathlib import Path

from runner.catalog.registry import Registry
from runner.catalog.vocabulary import JsonSchema, step_type_schema
from runner.dsl.language import runbook_schema
from runner.dsl.notify_schema import SCHEMA as NOTIFY_SCHEMA
from runner.dsl.policy_schema import SCHEMA as POLICY_SCHEMA
from runner.vault.schema import SCHEMA as SECRETS_SCHEMA

RUNBOOK_SCHEMA = "runbook.schema.json"
STEP_TYPE_SCHEMA = "step-type.schema.json"
SECRETS_CONFIG_SCHEMA = "secrets-config.schema.json"
NOTIFY_CONFIG_SCHEMA = "notify-config.schema.json"
POLICY_SCHEMA_FILE = "policy.schema.json"


def _dump(schema: JsonSchema) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_files(registry: Registry) -> dict[str, str]:
    """File name -> exact text, generated from the language and the step types."""
    return {
        RUNBOOK_SCHEMA: _dump(runbook_schema(registry)),
        STEP_TYPE_SCHEMA: _dump(step_type_schema()),
        SECRETS_CONFIG_SCHEMA: _dump(SECRETS_SCHEMA),
        NOTIFY_CONFIG_SCHEMA: _dump(NOTIFY_SCHEMA),
        POLICY_SCHEMA_FILE: _dump(POLICY_SCHEMA),
    }


def stale_files(registry: Registry, directory: Path) -> list[str]:
    """Names of the files in `directory` that differ from what would be generated now."""
    stale = []
    for name, text in schema_files(registry).items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
