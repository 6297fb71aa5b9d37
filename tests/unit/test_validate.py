"""The validator's plumbing: schema translation corners and the crash guard."""

from __future__ import annotations

from runner.dsl import validate as validate_module

HEAD = "apiVersion: qlrf/v1\nkind: Runbook\nname: t\n"


def codes(checked):
    return [d.code for d in checked.diagnostics]


def test_http_json_and_body_conflict(validator):
    """`json` and `body` together are one conflicting-keys error."""
    checked = validator.check_text(
        HEAD + "steps:\n  - id: a\n    type: http\n    with: {url: x, json: {}, body: y}\n"
    )
    assert codes(checked) == ["conflicting-keys"]


def test_repeated_need_is_a_duplicate_item(validator):
    """`needs: [a, a]` is refused."""
    checked = validator.check_text(
        HEAD + "steps:\n  - {id: a, type: sleep, with: {duration: 1s}}\n"
        "  - {id: b, type: sleep, needs: [a, a], with: {duration: 1s}}\n"
    )
    assert codes(checked) == ["duplicate-item"]


def test_concurrency_below_one_is_out_of_range(validator):
    """A run concurrency of 0 is out of range."""
    checked = validator.check_text(
        HEAD + "concurrency: 0\nsteps:\n  - {id: a, type: sleep, with: {duration: 1s}}\n"
    )
    assert codes(checked) == ["out-of-range"]
    assert checked.diagnostics[0].line == 4


def test_unknown_schema_keyword_falls_back_to_jsonschema_message(validator):
    """A failure the translator has no words for still yields a positioned `schema` error."""
    from jsonschema.exceptions import ValidationError

    from runner.dsl.loader import load_text

    doc = load_text("a: 1\n", "f.yaml")
    error = ValidationError("is too long", validator="maxLength", path=["a"], instance=1, schema={})
    [diag] = list(validator.schema_checker._translate(doc, error, ()))
    assert (diag.code, diag.line, diag.message) == ("schema", 1, "is too long")


def test_a_crashing_check_becomes_an_internal_error_not_a_traceback(validator, monkeypatch):
    """If one check has a bug, the others still report and the user sees no traceback."""

    def broken(doc, view):
        raise RuntimeError("boom")

    monkeypatch.setattr(validate_module.graph, "detect_cycles", broken)  # type: ignore[attr-defined]
    checked = validator.check_text(
        HEAD + "steps:\n  - {id: a, type: sleep, needs: [nope], with: {duration: 1s}}\n"
    )
    assert sorted(codes(checked)) == ["internal-error", "unknown-need"]
