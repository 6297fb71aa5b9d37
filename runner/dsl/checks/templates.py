"""Checks on templates: syntax, and that every name they use exists where they are used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2

from runner import templates
from runner.catalog.registry import Registry
from runner.dsl.checks import bash
from runner.dsl.checks.graph import bit_of, upstream
from runner.dsl.diagnostics import Diagnostic, Path
from runner.dsl.document import Document
from runner.dsl.model import FINALLY, RunbookView, StepView
from runner.suggest import hint

# Trigger rules under which a step runs although a step it needs failed.
_AFTER_FAILURE = ("all_done", "one_failed", "always")

# Keys of a step whose values are never templates.
_STATIC_KEYS = {
    "id",
    "type",
    "needs",
    "trigger_rule",
    "on_failure",
    "as",
    "retry",
    "timeout",
    "concurrency",
    "waves",
    "max_failures",
    "compensate",
    "locks",  # checked on their own (checks/locks.py): inputs and run fields only
}


@dataclass
class Scope:
    """What a template may name at one place in the file."""

    upstream_bits: int | None  # None: every step (run outputs)
    self_id_forbidden: str | None  # the step itself, whose result does not exist yet
    loop_var: str | None
    secrets_allowed: bool
    where: str  # for messages
    # The step runs when a step it needs failed (all_done, one_failed, always, or in
    # `finally`): the outputs it reads may not exist.
    after_failure: bool = False


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, str):
            if templates.is_template(v) or "{{" in v:
                yield p, v
        elif isinstance(v, dict):
            stack.extend(((*p, k), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend(((*p, i), x) for i, x in enumerate(v))


def unknown_names(
    doc: Document, path: Path, refs: templates.References, inputs: Iterable[str]
) -> list[Diagnostic]:
    """`inputs.X` not declared, and `run.X` that does not exist."""
    declared = list(inputs)
    found = [
        doc.diag(
            path,
            "undeclared-input",
            f"'inputs.{name}' is not declared{hint(name, declared)}; declare it under `inputs:`",
        )
        for name in refs.inputs
        if name not in declared
    ]
    found += [
        doc.diag(
            path,
            "unknown-name",
            f"'run.{name}' does not exist{hint(name, templates.RUN_FIELDS)}; "
            f"run has: {', '.join(templates.RUN_FIELDS)}",
        )
        for name in refs.run
        if name not in templates.RUN_FIELDS
    ]
    return found


class TemplateChecker:
    def __init__(self, doc: Document, view: RunbookView, registry: Registry) -> None:
        self.doc = doc
        self.view = view
        self.registry = registry
        self.env = templates.new_environment()
        self.by_id = view.by_id()
        self.bits = bit_of(view)
        self._upstream: dict[str, int] | None = None
        self.inputs = list(view.inputs)
        self.loop_vars = {s.loop_var for s in view.steps if s.loop_var}
        self.used_inputs: set[str] = set()
        self.out: list[Diagnostic] = []
        self._cache: dict[str, templates.References | jinja2.TemplateSyntaxError] = {}

    @property
    def upstream(self) -> dict[str, int]:
        if self._upstream is None:
            self._upstream = upstream(self.view)
        return self._upstream

    def run(self) -> list[Diagnostic]:
        for step in self.view.steps:
            self._step(step)
        outputs = self.view.data.get("outputs")
        if isinstance(outputs, dict):
            scope = Scope(None, None, None, False, "the run's outputs")
            for path, text in _strings(outputs, ("outputs",)):
                self._check(path, text, scope)
        return self.out

    def _step(self, step: StepView) -> None:
        step_type = self.registry.find(step.type)
        activity = step_type is not None and step_type.runs_in == "activity"
        ups = self.upstream.get(step.id, 0) if step.id else 0
        script = step_type.capabilities.script if step_type is not None else None
        for key, value in step.data.items():
            if key in _STATIC_KEYS:
                continue
            in_loop = key in ("with", "name")
            scope = Scope(
                ups,
                step.id,
                step.loop_var if in_loop else None,
                activity and key == "with",
                f"step '{step.id}'",
                after_failure=step.trigger_rule in _AFTER_FAILURE or step.section == FINALLY,
            )
            self._strings_of(value, (*step.path, key), scope, script if key == "with" else None)
        comp = step.data.get("compensate")
        if isinstance(comp, dict):
            found = self.registry.find(comp.get("type"))
            cact = found is not None and found.runs_in == "activity"
            cscript = found.capabilities.script if found is not None else None
            own = self.bits.get(step.id, 0) if step.id else 0
            scope = Scope(ups | own, None, None, cact, f"the compensation of '{step.id}'")
            for key in ("with", "name"):
                self._strings_of(
                    comp.get(key),
                    (*step.path, "compensate", key),
                    scope,
                    cscript if key == "with" else None,
                )

    def _strings_of(self, value: Any, where: Path, scope: Scope, script: str | None) -> None:
        """Check every template under `where`; `script` names the `with` key holding a
        bash script, in which only {{ }} is a template (each becomes $QLRF_ARG_n)."""
        for path, text in _strings(value, where):
            if script is not None and path[-2:] == ("with", script):
                # `${#array[@]}` and friends are bash, not Jinja comments.
                for _, _, expr in templates.expressions(text):
                    self._check(path, "{{" + expr + "}}", scope)
                self._quoted(path, text)
            else:
                self._check(path, text, scope)

    def _parse(self, text: str) -> templates.References | jinja2.TemplateSyntaxError:
        cached = self._cache.get(text)
        if cached is None:
            try:
                cached = templates.analyse(self.env, text)
            except jinja2.TemplateSyntaxError as exc:
                cached = exc
            except RecursionError:
                cached = jinja2.TemplateSyntaxError("it nests too deeply to read", 1)
            self._cache[text] = cached
        return cached

    def _check(self, path: Path, text: str, scope: Scope) -> None:
        refs = self._parse(text)
        d = self.doc.diag
        if isinstance(refs, jinja2.TemplateSyntaxError):
            lineno = f" (template line {refs.lineno})" if "\n" in text.strip() else ""
            self.out.append(
                d(
                    path,
                    "template-syntax",
                    f"template syntax error{lineno}: {(refs.message or '').rstrip('.')}; "
                    "fix the template",
                )
            )
            return
        problem = templates.budget_problem(self.env, text)
        if problem:
            self.out.append(
                d(
                    path,
                    "template-budget",
                    f"this template goes over the budget of every render whatever the run's "
                    f"data: {problem}",
                )
            )
        self.used_inputs.update(refs.inputs)
        self.out += unknown_names(self.doc, path, refs, self.inputs)
        for sid, field in refs.steps:
            self._step_ref(path, sid, field, scope)
            if field == "output" and scope.after_failure and sid in self.by_id:
                self._output_after_failure(path, sid, text, scope)
        if refs.secrets and not scope.secrets_allowed:
            self.out.append(
                d(
                    path,
                    "secret-in-workflow",
                    f"secrets.{refs.secrets[0]} is used in {scope.where} outside an activity's "
                    "`with`; secrets are resolved only inside activities, so they never reach "
                    "Temporal history: move it into the `with` of a shell, http, sql or notify "
                    "step",
                )
            )
        for root in refs.bare_roots:
            if root in ("secrets",):
                self.out.append(
                    d(
                        path,
                        "unknown-name",
                        "use secrets.NAME; the secrets as a whole are never available to templates",
                    )
                )
        for name in refs.other:
            if name == scope.loop_var:
                continue
            if name in self.loop_vars or name == "item":
                self.out.append(
                    d(
                        path,
                        "loop-var-outside",
                        f"'{name}' is a loop variable, defined only inside the `with` of its "
                        "`foreach` step; use it there, or refer to the step's output instead",
                    )
                )
            else:
                known = [*templates.ROOTS, *([scope.loop_var] if scope.loop_var else [])]
                self.out.append(
                    d(
                        path,
                        "unknown-name",
                        f"'{name}' is not defined{hint(name, known)}; templates can use "
                        f"{', '.join(known)}",
                    )
                )

    def _step_ref(self, path: Path, sid: str, field: str | None, scope: Scope) -> None:
        d = self.doc.diag
        target = self.by_id.get(sid)
        if target is None:
            self.out.append(
                d(
                    path,
                    "unknown-step-ref",
                    f"'steps.{sid}' names no step{hint(sid, self.by_id)}; use a step id",
                )
            )
            return
        if sid == scope.self_id_forbidden:
            self.out.append(
                d(
                    path,
                    "not-upstream",
                    f"step '{sid}' cannot use its own result while it runs; use it in its "
                    "`compensate` or in a later step",
                )
            )
            return
        if field is not None and field not in templates.STEP_FIELDS:
            self.out.append(
                d(
                    path,
                    "unknown-name",
                    f"'steps.{sid}.{field}' does not exist{hint(field, templates.STEP_FIELDS)}; "
                    f"a step has: {', '.join(templates.STEP_FIELDS)}",
                )
            )
        if scope.upstream_bits is None:
            return
        bit = self.bits.get(sid, 0)
        if not (scope.upstream_bits & bit):
            self.out.append(
                d(
                    path,
                    "not-upstream",
                    f"{scope.where} uses steps.{sid}, which is not certain to have finished "
                    f"before it starts; add '{sid}' to its `needs`",
                )
            )

    def _output_after_failure(self, path: Path, sid: str, text: str, scope: Scope) -> None:
        """A step that runs after failures reads `steps.X.output`, which is undefined
        when X failed before giving one, was skipped or was cancelled; unless the
        template looks at X's status (or gives a default) first."""
        if f"steps.{sid}.status" in text or "default(" in text:
            return
        self.out.append(
            self.doc.diag(
                path,
                "output-after-failure",
                f"{scope.where} runs even when '{sid}' fails, and then steps.{sid}.output may "
                f"be undefined; test steps.{sid}.status first, e.g. `steps.{sid}.output.X if "
                f"steps.{sid}.status == 'succeeded' else none`",
                severity="warning",
            )
        )

    def _quoted(self, path: Path, script: str) -> None:
        # The same bash parser as the injection checks (checks/bash.py): one reading
        # of the script's quotes for both.
        for match in bash.single_quoted(script):
            self.out.append(
                self.doc.diag(
                    path,
                    "quoted-template",
                    f"{match} sits inside single quotes, where the shell does not expand "
                    "variables, so it would stay literal; use double quotes",
                    severity="warning",
                )
            )


def detect_template_problems(
    doc: Document, view: RunbookView, registry: Registry
) -> tuple[list[Diagnostic], set[str]]:
    """All template diagnostics, and the inputs that templates use."""
    checker = TemplateChecker(doc, view, registry)
    return checker.run(), checker.used_inputs
