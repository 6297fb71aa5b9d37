"""Checks on values the schema cannot judge alone: inputs, retries, timeouts, waves, gates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner import durations
from runner.catalog.registry import Registry
from runner.dsl.diagnostics import Diagnostic
from runner.dsl.document import Document
from runner.dsl.model import RunbookView, StepView
from runner.plan import policy, waves
from runner.plan.inputs import value_problem
from runner.suggest import hint
from runner.templates import ROOTS


def detect_input_problems(doc: Document, view: RunbookView) -> Iterator[Diagnostic]:
    for name, decl in view.inputs.items():
        if not isinstance(decl, dict):
            continue
        path = ("inputs", name)
        enum = decl.get("enum")
        if isinstance(enum, list):
            bare = {k: v for k, v in decl.items() if k != "enum"}
            for i, option in enumerate(enum):
                problem = value_problem(bare, option)
                if problem:
                    yield doc.diag(
                        (*path, "enum", i),
                        "enum-type",
                        f"enum value does not fit the input's type: {problem}",
                    )
        if "default" in decl:
            problem = value_problem(decl, decl["default"])
            if problem:
                yield doc.diag(
                    (*path, "default"),
                    "default-type",
                    f"default of input '{name}' is wrong: {problem}; fix the default",
                )
            if decl.get("required") is True:
                yield doc.diag(
                    (*path, "required"),
                    "required-with-default",
                    f"input '{name}' is required and also has a default, so it is "
                    "never missing; drop one of them",
                    severity="warning",
                )
        if decl.get("type") != "array" and "items" in decl:
            yield doc.diag(
                (*path, "items"),
                "items-without-array",
                "`items` only applies to inputs of type array; remove it",
            )


def detect_unused_inputs(doc: Document, view: RunbookView, used: set[str]) -> Iterator[Diagnostic]:
    for name in view.inputs:
        if name not in used:
            yield doc.diag(
                ("inputs", name),
                "unused-input",
                f"input '{name}' is declared but no template uses it; use it or remove it",
                severity="warning",
                on_key=True,
            )


def _retry_layers(view: RunbookView, step: StepView, registry: Registry) -> list[Any]:
    defaults = view.data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    found = registry.find(step.type)
    type_retry = found.retry if found else {}
    return [type_retry, defaults.get("retry"), step.data.get("retry")]


def detect_retry_problems(
    doc: Document, view: RunbookView, registry: Registry
) -> Iterator[Diagnostic]:
    reported: set[tuple[Any, ...]] = set()
    for step in view.steps:
        layers = _retry_layers(view, step, registry)
        effective = policy.merge_retry(*layers)
        for field, reason in policy.retry_problems(effective):
            # Point at the layer that set the field last: the step, or `defaults`.
            if isinstance(layers[2], dict) and field in layers[2]:
                path: tuple[Any, ...] = (*step.path, "retry", field)
            elif isinstance(layers[1], dict) and field in layers[1]:
                path = ("defaults", "retry", field)
            else:
                path = (*step.path, "retry")
            if path in reported:
                continue
            reported.add(path)
            yield doc.diag(path, "retry-range", f"{reason} (effective policy of '{step.id}')")


def _zero_durations(doc: Document, value: Any, path: tuple[Any, ...]) -> Iterator[Diagnostic]:
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for key, text in items:
        if isinstance(text, str) and durations.is_duration(text) and durations.parse_ms(text) == 0:
            where = (*path, key) if key is not None else path
            yield doc.diag(
                where,
                "invalid-duration",
                f"a timeout of {text} could never be met; give a duration above 0",
            )


def detect_timeout_problems(doc: Document, view: RunbookView) -> Iterator[Diagnostic]:
    yield from _zero_durations(doc, view.data.get("timeout"), ("timeout",))
    defaults = view.data.get("defaults")
    if isinstance(defaults, dict):
        yield from _zero_durations(doc, defaults.get("timeout"), ("defaults", "timeout"))
    for step in view.steps:
        yield from _zero_durations(doc, step.data.get("timeout"), (*step.path, "timeout"))


def _literal_length(step: StepView) -> int | None:
    foreach = step.data.get("foreach")
    return len(foreach) if isinstance(foreach, list) else None


def detect_fanout_problems(
    doc: Document, view: RunbookView, registry: Registry
) -> Iterator[Diagnostic]:
    for step in view.steps:
        data = step.data
        step_type = registry.find(step.type)
        if "foreach" in data and step_type is not None and not step_type.capabilities.fan_out:
            able = ", ".join(t.type for t in registry if t.capabilities.fan_out)
            yield doc.diag(
                (*step.path, "foreach"),
                "foreach-type",
                f"{'an' if step_type.type[:1] in 'aeiou' else 'a'} {step_type.type} step "
                f"cannot fan out: `foreach` runs step types that may ({able}); put the "
                "per-item work in such a step",
                on_key=True,
            )
        if "foreach" not in data:
            for key in ("as", "waves", "max_failures", "concurrency"):
                if key in data:
                    yield doc.diag(
                        (*step.path, key),
                        "fanout-without-foreach",
                        f"`{key}` only applies to a step with `foreach`; add a "
                        "foreach or remove it",
                        on_key=True,
                    )
            continue
        loop = data.get("as")
        if isinstance(loop, str) and loop in ROOTS:
            yield doc.diag(
                (*step.path, "as"),
                "loop-var-shadows",
                f"the loop variable cannot be called '{loop}', which templates "
                "already use; pick another name",
            )
        yield from _waves(doc, step)
        yield from _budget_over_100(doc, data.get("max_failures"), (*step.path, "max_failures"))


def _budget_over_100(doc: Document, value: Any, path: tuple[Any, ...]) -> Iterator[Diagnostic]:
    budget = waves.parse_amount(value)
    if budget is not None and budget.percent is not None and budget.percent > 100:
        yield doc.diag(path, "wave-size", "max_failures is over 100%; use a percentage up to 100%")


def _waves(doc: Document, step: StepView) -> Iterator[Diagnostic]:
    specs = step.data.get("waves")
    if not isinstance(specs, list):
        return
    total = _literal_length(step)
    previous: waves.Amount | None = None
    previous_count: int | None = None
    names: dict[str, int] = {}
    for i, wave in enumerate(specs):
        if not isinstance(wave, dict):
            continue
        path = (*step.path, "waves", i)
        name = wave.get("name")
        if isinstance(name, str):
            if name in names:
                yield doc.diag(
                    (*path, "name"),
                    "duplicate-wave",
                    f"wave name '{name}' is already used by wave {names[name] + 1}; "
                    "wave names are gate names and must be unique",
                )
            names.setdefault(name, i)
        yield from _budget_over_100(doc, wave.get("max_failures"), (*path, "max_failures"))
        size = waves.parse_amount(wave.get("size"))
        if size is None:
            continue
        amount = size.percent if size.percent is not None else size.count or 0
        if amount <= 0:
            yield doc.diag(
                (*path, "size"),
                "wave-size",
                "a wave of size 0 would do nothing; sizes are cumulative and start at 1 or more",
            )
            continue
        if size.percent is not None and size.percent > 100:
            yield doc.diag(
                (*path, "size"),
                "wave-size",
                f"{wave['size']} is over 100%; the last wave can be at most 100%",
            )
            continue
        count = waves.cumulative_end(total, size) if total is not None else None
        not_growing = False
        if previous is not None:
            if previous.percent == 100.0:
                not_growing = True
            elif count is not None and previous_count is not None:
                not_growing = count <= previous_count
            elif (size.percent is None) == (previous.percent is None):
                before = previous.percent if previous.percent is not None else previous.count
                not_growing = amount <= (before or 0)
        if not_growing:
            yield doc.diag(
                (*path, "size"),
                "wave-size",
                f"wave sizes are cumulative and must grow, but {wave['size']} does "
                "not exceed the wave before it; make it larger",
            )
        previous, previous_count = size, count
        if size.count is not None and total is not None and size.count > total:
            yield doc.diag(
                (*path, "size"),
                "wave-size",
                f"wave size {size.count} is more than the {total} items of the list",
            )


def _approval_blocks(
    view: RunbookView, registry: Registry
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    for step in view.steps:
        step_type = registry.find(step.type)
        if step_type is not None and step_type.capabilities.gate:
            yield (*step.path, "with"), step.with_
        specs = step.data.get("waves")
        for i, wave in enumerate(specs if isinstance(specs, list) else []):
            if isinstance(wave, dict) and wave.get("approval") is True:
                yield (*step.path, "waves", i), wave


def detect_approval_problems(
    doc: Document, view: RunbookView, registry: Registry
) -> Iterator[Diagnostic]:
    inputs = list(view.inputs)
    for path, block in _approval_blocks(view, registry):
        modifiable = block.get("modifiable")
        for i, name in enumerate(modifiable if isinstance(modifiable, list) else []):
            if isinstance(name, str) and name not in inputs:
                yield doc.diag(
                    (*path, "modifiable", i),
                    "modifiable-unknown",
                    f"'{name}' is not a declared input{hint(name, inputs)}; an "
                    "approver can only modify inputs",
                )
        approvers = block.get("approvers")
        quorum = block.get("min_approvals")
        if (
            isinstance(approvers, list)
            and approvers
            and isinstance(quorum, int)
            and not any(isinstance(a, str) and a.startswith("group:") for a in approvers)
            and quorum > len(set(approvers))
        ):
            yield doc.diag(
                (*path, "min_approvals"),
                "quorum-unreachable",
                f"min_approvals is {quorum} but only {len(set(approvers))} people "
                "may approve; lower it or add approvers",
            )


def detect_error_type_names(
    doc: Document, view: RunbookView, registry: Registry
) -> Iterator[Diagnostic]:
    for step in view.steps:
        found = registry.find(step.type)
        if found is None:
            continue
        known = found.errors
        for where, retry in ((step.path, step.data.get("retry")),):
            names = retry.get("non_retryable_errors") if isinstance(retry, dict) else None
            for i, name in enumerate(names if isinstance(names, list) else []):
                if isinstance(name, str) and name not in known:
                    yield doc.diag(
                        (*where, "retry", "non_retryable_errors", i),
                        "unknown-error-type",
                        f"a {step.type} step never fails with '{name}'"
                        f"{hint(name, known)}; its error types: "
                        f"{', '.join(known) or 'none'}",
                        severity="warning",
                    )


def detect_child_runbooks(
    doc: Document, view: RunbookView, library: Path | None, registry: Registry
) -> Iterator[Diagnostic]:
    base = Path(doc.file).parent
    for step in view.steps:
        step_type = registry.find(step.type)
        if step_type is None or step_type.runs_in != "child_workflow":
            continue
        params = step.with_
        file = params.get("file")
        if isinstance(file, str) and "{{" not in file and not (base / file).is_file():
            yield doc.diag(
                (*step.path, "with", "file"),
                "missing-runbook",
                f"no runbook file '{file}' next to {doc.file}; the path is relative to this file",
            )
        ref = params.get("ref")
        if isinstance(ref, str) and ref.startswith("library/") and library is not None:
            name = ref.removeprefix("library/")
            known = sorted(p.stem for p in library.glob("*.yaml"))
            if name not in known:
                yield doc.diag(
                    (*step.path, "with", "ref"),
                    "missing-runbook",
                    f"no library runbook '{name}'{hint(name, known)}; the library "
                    f"has: {', '.join(known) or 'nothing yet'}",
                )
