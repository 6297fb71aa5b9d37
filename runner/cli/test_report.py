"""How `qlrf-run test` reports: text for people, JSON for tools, JUnit XML for CI
dashboards, and GitHub annotations on the lines of the failing cases."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from runner.dsl.diagnostics import escape_github
from runner.testing.coverage import Coverage
from runner.testing.verdict import CaseResult, Mismatch, path_lines


def progress_line(result: CaseResult) -> str:
    mark = "PASS" if result.passed else ("ERROR" if result.broken else "FAIL")
    return f"{mark} {_where(result)} {result.case.name} ({result.seconds:.2f}s)"


def _where(result: CaseResult) -> str:
    return f"{result.case.file}:{result.case.line}"


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of text in columns two spaces apart; the last column is left ragged."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(f"{c:<{w}}" for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    ]


def table(mismatches: Sequence[Mismatch]) -> list[str]:
    """Expected and actual side by side."""
    return aligned(
        [("what", "expected", "actual"), *((m.what, m.expected, m.actual) for m in mismatches)]
    )


def failure_text(result: CaseResult) -> list[str]:
    lines = [f"{_where(result)}: case '{result.case.name}' of {result.suite.runbook}"]
    if result.broken:
        lines.append(f"  {result.broken}")
    lines += [f"  {line}" for line in table(result.mismatches)] if result.mismatches else []
    if result.actual is not None:
        lines.append("  what happened:")
        lines += [f"    {line}" for line in path_lines(result.suite, result.actual)]
    return lines


def summary(results: Sequence[CaseResult], seconds: float) -> str:
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    files = len({r.case.file for r in results})
    cases = f"{len(results)} case(s) in {files} file(s)"
    return f"{passed} passed, {failed} failed in {seconds:.2f}s ({cases})"


def render_text(
    results: Sequence[CaseResult], seconds: float, coverage: list[Coverage] | None
) -> str:
    lines: list[str] = []
    failed = [r for r in results if not r.passed]
    if failed:
        lines.append("")
        for result in failed:
            lines += failure_text(result)
            lines.append("")
    for cov in coverage or []:
        lines += cov.lines()
    lines.append(summary(results, seconds))
    return "\n".join(lines)


def _case_json(result: CaseResult) -> dict[str, Any]:
    found: dict[str, Any] = {
        "file": result.case.file,
        "line": result.case.line,
        "runbook": str(result.suite.runbook),
        "name": result.case.name,
        "passed": result.passed,
        "seconds": round(result.seconds, 3),
        "error": result.broken,
        "mismatches": [
            {"what": m.what, "expected": m.expected, "actual": m.actual} for m in result.mismatches
        ],
    }
    actual = result.actual
    if actual is not None:
        view = actual.view
        found["actual"] = {
            "status": view.status,
            "error": view.error,
            "started_at": view.started_at,
            "finished_at": view.finished_at,
            "steps": {
                name: {
                    "status": s.status,
                    "attempts": s.attempts,
                    "started_at": s.started_at,  # in simulated time
                    "finished_at": s.finished_at,
                    "error": s.error,
                }
                for name, s in view.steps.items()
            },
            "compensated": actual.compensated(),
            "outputs": view.outputs,
            "deliveries": [
                {"what": d["shown"], "refused": d.get("refused")} for d in actual.deliveries
            ],
        }
    return found


def render_json(
    results: Sequence[CaseResult], seconds: float, coverage: list[Coverage] | None
) -> str:
    passed = sum(r.passed for r in results)
    found: dict[str, Any] = {
        "passed": passed,
        "failed": len(results) - passed,
        "seconds": round(seconds, 3),
        "cases": [_case_json(r) for r in results],
    }
    if coverage is not None:
        found["coverage"] = [c.to_json() for c in coverage]
    return json.dumps(found, indent=2, default=str)


def render_junit(
    results: Sequence[CaseResult], seconds: float, coverage: list[Coverage] | None
) -> str:
    root = ET.Element(
        "testsuites",
        name="qlrf-run test",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if r.mismatches and not r.broken)),
        errors=str(sum(1 for r in results if r.broken)),
        time=f"{seconds:.3f}",
    )
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.case.file, []).append(result)
    for file, cases in by_file.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(cases)),
            failures=str(sum(1 for r in cases if r.mismatches and not r.broken)),
            errors=str(sum(1 for r in cases if r.broken)),
            time=f"{sum(r.seconds for r in cases):.3f}",
        )
        for result in cases:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=result.suite.plan.name,
                name=result.case.name,
                file=file,
                line=str(result.case.line),
                time=f"{result.seconds:.3f}",
            )
            text = "\n".join(failure_text(result))
            if result.broken:
                ET.SubElement(case, "error", message=result.broken, type="CaseError").text = text
            elif result.mismatches:
                first = result.mismatches[0]
                message = f"{first.what}: expected {first.expected}, got {first.actual}"
                ET.SubElement(case, "failure", message=message, type="Mismatch").text = text
    if coverage:
        out = ET.SubElement(root, "system-out")
        out.text = "\n".join(line for c in coverage for line in c.lines())
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def render_github(
    results: Sequence[CaseResult], seconds: float, coverage: list[Coverage] | None
) -> str:
    lines = []
    for result in results:
        if result.passed:
            continue
        first = result.broken or "; ".join(
            f"{m.what}: expected {m.expected}, got {m.actual}" for m in result.mismatches
        )
        lines.append(
            f"::error file={escape_github(result.case.file, prop=True)},"
            f"line={result.case.line},col={result.case.column},"
            f"title={escape_github('qlrf-run test: ' + result.case.name, prop=True)}::"
            f"{escape_github(first)}"
        )
    for cov in coverage or []:
        lines += cov.lines()
    lines.append(summary(results, seconds))
    return "\n".join(lines)


RENDERERS = {
    "text": render_text,
    "json": render_json,
    "junit": render_junit,
    "github": render_github,
}
