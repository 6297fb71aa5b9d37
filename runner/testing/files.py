"""Read a test file: its schema, then every name it uses checked against the runbook.

Each problem is a diagnostic with file:line:col, as `validate` prints them: an
unknown step in `mocks`, a gate the runbook does not have, a matcher on an output
the runbook does not produce, inputs the runbook refuses. No Temporal here: this
runs in `validate`, in pre-commit hooks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.dsl.diagnostics import Diagnostic, has_errors
from runner.dsl.document import Document
from runner.dsl.loader import load_file
from runner.durations import parse_ms
from runner.errors import InputError, QlrfError
from runner.plan import inputs as run_inputs
from runner.plan.model import Node, Plan
from runner.suggest import hint
from runner.testing import steps as plan_steps
from runner.testing.matchers import Matcher
from runner.testing.model import (
    TESTER,
    Case,
    Expect,
    Failure,
    Mock,
    Outcome,
    StepExpect,
    Suite,
    TimedControl,
    TimedDecision,
)

START_TEST = "a test file starts with apiVersion: qlrf/v1, kind: Test, runbook: and cases:"


def load_suite(path: Path, display: str | None = None) -> tuple[Suite | None, list[Diagnostic]]:
    """The suite, or None; and every problem found, each with its position."""
    from runner.dsl.validate import default_validator

    doc = load_file(path, display, start_from=START_TEST)
    if doc.data is None:
        return None, list(doc.diagnostics)
    return read_suite(
        doc, list(doc.diagnostics) + default_validator().test_checker.check(doc), path
    )


def read_suite(
    doc: Document, checked: list[Diagnostic], path: Path
) -> tuple[Suite | None, list[Diagnostic]]:
    """The suite of a loaded test file whose schema problems are `checked`: what it names
    is checked against its runbook unless the schema check found errors."""
    found = list(checked)
    if has_errors(found) or not isinstance(doc.data, dict):
        return None, found
    reader = _Reader(doc, path)
    suite = reader.read()
    found += reader.found
    return (None if has_errors(found) else suite), found


class _Reader:
    def __init__(self, doc: Document, path: Path) -> None:
        self.doc = doc
        self.path = path
        self.found: list[Diagnostic] = []

    def error(
        self,
        where: tuple[Any, ...],
        code: str,
        message: str,
        *,
        on_key: bool = False,
        severity: str = "error",
    ) -> None:
        self.found.append(self.doc.diag(where, code, message, on_key=on_key, severity=severity))

    # -- the runbook ------------------------------------------------------------------

    def read(self) -> Suite | None:
        from runner.pipeline import InvalidRunbook, compile_checked

        data: dict[str, Any] = self.doc.data
        runbook = self.path.parent / str(data["runbook"])
        if not runbook.is_file():
            self.error(
                ("runbook",),
                "no-runbook",
                f"no runbook {runbook}; give its path relative to this file",
            )
            return None
        try:
            plan, _, source = compile_checked(runbook)
        except InvalidRunbook as exc:
            errors = [d for d in exc.diagnostics if d.severity == "error"]
            first = errors[0].text() if errors else ""
            self.error(
                ("runbook",),
                "invalid-runbook",
                f"the runbook has {len(errors)} error(s), the first: {first}; "
                f"see `qlrf-run validate {runbook}`",
            )
            return None
        except QlrfError as exc:
            self.error(("runbook",), "invalid-runbook", f"the runbook cannot be compiled: {exc}")
            return None
        # A test file named as the runbook is refused by compile_checked (QlrfError above).
        index, gates = plan_steps.steps(plan), plan_steps.gates(plan)
        cases = []
        names: dict[str, int] = {}
        for i, raw in enumerate(data["cases"]):
            name = str(raw["name"])
            if name in names:
                self.error(
                    ("cases", i, "name"),
                    "duplicate-case",
                    f"case '{name}' is named twice (also cases[{names[name]}]); "
                    "give each case a name of its own",
                )
            names.setdefault(name, i)
            case = self._case(plan, index, gates, raw, ("cases", i))
            if case is not None:
                cases.append(case)
        groups = {str(k): [str(m) for m in v] for k, v in (data.get("groups") or {}).items()}
        return Suite(self.doc.file, runbook, plan, source, groups, cases)

    # -- a case -----------------------------------------------------------------------

    def _case(
        self,
        plan: Plan,
        index: Mapping[str, Node],
        gates: Mapping[str, Node],
        raw: Mapping[str, Any],
        at: tuple[Any, ...],
    ) -> Case | None:
        before = sum(d.severity == "error" for d in self.found)
        given = raw.get("inputs") or {}
        inputs: dict[str, Any] = {}
        try:
            inputs = run_inputs.resolve(plan.declarations(), given)
        except InputError as exc:
            self.error((*at, "inputs") if "inputs" in raw else at, "invalid-inputs", str(exc))
        mocks = {
            str(step): mock
            for step, spec in (raw.get("mocks") or {}).items()
            if (mock := self._mock(index, str(step), spec, (*at, "mocks", step))) is not None
        }
        decisions = [
            d
            for j, spec in enumerate(raw.get("decisions") or [])
            if (d := self._decision(gates, spec, (*at, "decisions", j))) is not None
        ]
        controls = [
            c
            for j, spec in enumerate(raw.get("controls") or [])
            if (c := self._control(index, spec, (*at, "controls", j))) is not None
        ]
        expect = self._expect(plan, index, raw["expect"], (*at, "expect"))
        if sum(d.severity == "error" for d in self.found) > before:
            return None
        line, column = self.doc.at((*at, "name"))
        return Case(
            name=str(raw["name"]),
            file=self.doc.file,
            line=line,
            column=column,
            inputs=inputs,
            started_by=str(raw.get("started_by") or TESTER),
            mocks=mocks,
            decisions=decisions,
            controls=controls,
            expect=expect,
        )

    def _step(
        self, index: Mapping[str, Node], name: str, where: tuple[Any, ...], what: str
    ) -> Node | None:
        node = index.get(name)
        if node is None:
            known = ", ".join(index) or "(none)"
            self.error(
                where,
                "unknown-step",
                f"no step '{name}' in the runbook{hint(name, index)}; {what} name its steps "
                f"(CHILD.STEP inside a child runbook): {known}",
                on_key=True,
            )
        return node

    def _mock(
        self, index: Mapping[str, Node], name: str, spec: Mapping[str, Any], at: tuple[Any, ...]
    ) -> Mock | None:
        node = self._step(index, name, at, "mocks")
        if node is None:
            return None
        if not plan_steps.mockable(node):
            self.error(
                at,
                "not-mockable",
                f"step '{name}' ({node.type}) runs in the workflow, for real in a test "
                "(decide gates with `decisions:`); mock only steps that run as activities",
                on_key=True,
            )
            return None
        if ("items" in spec or "default" in spec) and node.fanout is None:
            key = "items" if "items" in spec else "default"
            self.error(
                (*at, key),
                "not-a-fanout",
                f"step '{name}' has no foreach: `{key}` answers a fan-out's items",
                on_key=True,
            )
        if "compensate" in spec and node.compensate is None:
            self.error(
                (*at, "compensate"),
                "no-compensation",
                f"step '{name}' has no compensate: this answer is never asked for",
                on_key=True,
                severity="warning",  # a runbook that lost a compensation fails a case
            )
        items = {
            str(k): self._outcome(v, (*at, "items", k))
            for k, v in (spec.get("items") or {}).items()
        }
        return Mock(
            outcome=self._outcome(spec, at)
            if any(k in spec for k in ("output", "fail", "times", "then"))
            else None,
            items=items,
            default=self._outcome(spec["default"], (*at, "default")) if "default" in spec else None,
            compensate=self._outcome(spec["compensate"], (*at, "compensate"))
            if "compensate" in spec
            else None,
        )

    def _outcome(self, spec: Mapping[str, Any], at: tuple[Any, ...]) -> Outcome:
        if "fail" in spec and "output" in spec:
            self.error(
                (*at, "output"),
                "conflicting-keys",
                "an attempt either fails or gives an output: to fail first and then succeed, "
                "write fail:, times: and then: {output: ...}",
                on_key=True,
            )
        if ("times" in spec or "then" in spec) and "fail" not in spec:
            key = "times" if "times" in spec else "then"
            self.error(
                (*at, key),
                "needs-fail",
                f"`{key}` counts failed attempts: give `fail:` too",
                on_key=True,
            )
        if "then" in spec and "times" not in spec:
            self.error(
                (*at, "then"),
                "needs-times",
                "`then` follows the first `times` failures: give `times:`",
                on_key=True,
            )
        failure = spec.get("fail")
        return Outcome(
            output=spec.get("output"),
            fail=Failure(
                str(failure["type"]),
                str(failure.get("message") or f"{failure['type']} (mocked)"),
                bool(failure.get("retry", True)),
            )
            if isinstance(failure, Mapping)
            else None,
            times=spec.get("times"),
            then=self._outcome(spec["then"], (*at, "then")) if "then" in spec else None,
        )

    def _decision(
        self, gates: Mapping[str, Node], spec: Mapping[str, Any], at: tuple[Any, ...]
    ) -> TimedDecision | None:
        gate = str(spec["gate"])
        ok = True
        if gate not in gates:
            known = ", ".join(gates) or "(none: the runbook has no gate)"
            self.error(
                (*at, "gate"),
                "unknown-gate",
                f"no gate '{gate}' in the runbook{hint(gate, gates)}; its gates: {known}",
            )
            ok = False
        kind = str(spec["decision"])
        if kind == "modify" and "set" not in spec:
            self.error(at, "missing-key", "a modify decision sets inputs: add set: {NAME: VALUE}")
            ok = False
        if kind != "modify" and "set" in spec:
            self.error((*at, "set"), "conflicting-keys", "only a modify decision sets inputs")
            ok = False
        if not ok:
            return None
        return TimedDecision(
            gate=gate,
            after_ms=_ms(spec.get("after")),
            by=str(spec["by"]),
            decision=kind,
            set=dict(spec["set"]) if "set" in spec else None,
            comment=str(spec.get("comment") or ""),
        )

    def _control(
        self, index: Mapping[str, Node], spec: Mapping[str, Any], at: tuple[Any, ...]
    ) -> TimedControl | None:
        action = str(spec["action"])
        step = spec.get("step")
        if action in ("skip", "concurrency"):
            if step is None:
                self.error(at, "missing-key", f"{action} names its fan-out: add step: STEP")
                return None
            node = self._step(index, str(step), (*at, "step"), "controls")
            if node is None:
                return None
            if node.fanout is None:
                self.error((*at, "step"), "not-a-fanout", f"step '{step}' has no foreach")
                return None
            need = "items" if action == "skip" else "concurrency"
            if need not in spec:
                self.error(at, "missing-key", f"{action} needs `{need}:`")
                return None
        elif step is not None or "items" in spec or "concurrency" in spec:
            self.error(at, "conflicting-keys", f"{action} takes no step, items or concurrency")
            return None
        return TimedControl(
            action=action,
            at_ms=_ms(spec.get("at")),
            by=str(spec.get("by") or TESTER),
            step=str(step) if step is not None else None,
            items=[str(i) for i in spec.get("items") or []],
            concurrency=spec.get("concurrency"),
            comment=str(spec.get("comment") or ""),
        )

    # -- what to expect -----------------------------------------------------------------

    def _expect(
        self, plan: Plan, index: Mapping[str, Node], spec: Mapping[str, Any], at: tuple[Any, ...]
    ) -> Expect:
        steps: dict[str, StepExpect] = {}
        for name, want in (spec.get("steps") or {}).items():
            where = (*at, "steps", name)
            node = self._step(index, str(name), where, "expectations")
            if node is None:
                continue
            if isinstance(want, str):
                steps[str(name)] = StepExpect(status=want)
                continue
            if "items" in want and node.fanout is None:
                self.error((*where, "items"), "not-a-fanout", f"step '{name}' has no foreach")
            steps[str(name)] = StepExpect(
                status=want.get("status"),
                attempts=want.get("attempts"),
                output={
                    str(k): self._matcher(v, (*where, "output", k))
                    for k, v in want["output"].items()
                }
                if "output" in want
                else None,
                error=want.get("error"),
                items={str(k): str(v) for k, v in want["items"].items()}
                if "items" in want
                else None,
            )
        compensated = spec.get("compensated")
        for j, name in enumerate(compensated or []):
            node = self._step(index, str(name), (*at, "compensated", j), "expectations")
            if node is not None and node.compensate is None:
                self.error(
                    (*at, "compensated", j),
                    "no-compensation",
                    f"step '{name}' has no compensate: it can never be compensated",
                    severity="warning",  # the case fails, naming what ran instead
                )
        outputs: dict[str, Matcher] = {}
        declared = list(plan.outputs)
        for name, want in (spec.get("outputs") or {}).items():
            if name not in plan.outputs:
                self.error(
                    (*at, "outputs", name),
                    "unknown-output",
                    f"the runbook has no output '{name}'{hint(str(name), declared)}; its "
                    f"outputs: {', '.join(declared) or '(none)'}",
                    on_key=True,
                )
                continue
            outputs[str(name)] = self._matcher(want, (*at, "outputs", name))
        return Expect(
            status=spec.get("status"),
            error=spec.get("error"),
            steps=steps,
            compensated=[str(s) for s in compensated] if compensated is not None else None,
            outputs=outputs,
            audit=[{str(k): str(v) for k, v in e.items()} for e in spec.get("audit") or []],
        )

    def _matcher(self, raw: Any, at: tuple[Any, ...]) -> Matcher:
        matcher = Matcher.of(raw)
        pattern = matcher.ops.get("matches")
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.error((*at, "matches"), "invalid-pattern", f"not a regular expression: {exc}")
        return matcher


def _ms(text: Any) -> int:
    return parse_ms(str(text)) if text is not None else 0  # the schema checked the pattern
