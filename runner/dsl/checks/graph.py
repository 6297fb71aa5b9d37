"""Checks on the step graph: ids, needs, cycles, and steps that can never run."""

from __future__ import annotations

from collections.abc import Iterator

from runner.dsl.diagnostics import Diagnostic
from runner.dsl.document import Document
from runner.dsl.model import FINALLY, MAIN, RunbookView, StepView
from runner.suggest import hint


def detect_duplicate_ids(doc: Document, view: RunbookView) -> Iterator[Diagnostic]:
    seen: dict[str, StepView] = {}
    for step in view.steps:
        if step.id is None:
            continue
        first = seen.get(step.id)
        if first is None:
            seen[step.id] = step
            continue
        line, _ = doc.at((*first.path, "id"))
        yield doc.diag(
            (*step.path, "id"),
            "duplicate-id",
            f"step id '{step.id}' is already used at line {line}; give this step another id",
        )


def detect_unknown_needs(doc: Document, view: RunbookView) -> Iterator[Diagnostic]:
    by_id = view.by_id()
    for step in view.steps:
        if not step.explicit_needs:
            continue
        raw = step.data.get("needs")
        for j, need in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(need, str):
                continue  # the schema check reports the type
            path = (*step.path, "needs", j)
            target = by_id.get(need)
            if target is None:
                known = [s for s in by_id if by_id[s].section == step.section]
                yield doc.diag(
                    path,
                    "unknown-need",
                    f"no step '{need}'{hint(need, known)}; name a step of this file",
                )
            elif step.section == MAIN and target.section == FINALLY:
                yield doc.diag(
                    path,
                    "need-finally",
                    f"'{need}' is a finally step, which runs after all steps end; "
                    "a step cannot wait for it",
                )


def _section_edges(view: RunbookView, section: str) -> dict[str, list[str]]:
    ids = {s.id for s in view.section(section) if s.id}
    edges: dict[str, list[str]] = {}
    for step in view.section(section):
        if step.id and step.id not in edges:
            edges[step.id] = [n for n in step.needs if n in ids]
    return edges


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Each distinct cycle once, as [a, b, ..., a], in the order the DFS meets them."""
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    for root in edges:
        if color.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: list[str] = [root]
        color[root] = 1
        while stack:
            node, i = stack[-1]
            nexts = edges.get(node, [])
            if i < len(nexts):
                stack[-1] = (node, i + 1)
                nxt = nexts[i]
                state = color.get(nxt, 0)
                if state == 0:
                    color[nxt] = 1
                    stack.append((nxt, 0))
                    on_path.append(nxt)
                elif state == 1:
                    cycle = [*on_path[on_path.index(nxt) :], nxt]
                    key = frozenset(cycle)
                    if key not in seen_sets:
                        seen_sets.add(key)
                        cycles.append(cycle)
            else:
                color[node] = 2
                stack.pop()
                on_path.pop()
    return cycles


def detect_cycles(doc: Document, view: RunbookView) -> Iterator[Diagnostic]:
    by_id = view.by_id()
    for section in (MAIN, FINALLY):
        for cycle in find_cycles(_section_edges(view, section)):
            # `needs` lists what a step waits for, so print the cycle in run order.
            shown = " -> ".join(reversed(cycle))
            first = min((by_id[s] for s in cycle[:-1]), key=lambda s: s.index)
            where = (*first.path, "needs") if first.explicit_needs else (*first.path, "id")
            yield doc.diag(
                where,
                "cycle",
                f"steps wait for each other in a cycle: {shown}; remove one of these needs",
            )


def upstream(view: RunbookView) -> dict[str, int]:
    """For each step id, a bitset of the steps that are certain to finish before it starts.

    Python ints serve as bitsets: one OR per need keeps this near-linear even for
    10,000-step runbooks. Every main step is upstream of every finally step.
    """
    by_id = view.by_id()
    bit = {sid: 1 << i for i, sid in enumerate(by_id)}
    all_main = 0
    for sid, step in by_id.items():
        if step.section == MAIN:
            all_main |= bit[sid]
    result: dict[str, int] = {}
    visiting: set[str] = set()
    for sid in by_id:
        if sid in result:
            continue
        stack = [sid]
        while stack:
            current = stack[-1]
            if current in result:  # reached twice through two dependents
                stack.pop()
                continue
            step = by_id[current]
            pending = [
                n for n in step.needs if n in by_id and n not in result and n not in visiting
            ]
            visiting.add(current)
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            visiting.discard(current)
            acc = all_main if step.section == FINALLY else 0
            for need in step.needs:
                if need in by_id and need in result:
                    acc |= result[need] | bit[need]
            result[current] = acc & ~bit[current]
    return result


def bit_of(view: RunbookView) -> dict[str, int]:
    return {sid: 1 << i for i, sid in enumerate(view.by_id())}


def _never(step: StepView) -> bool:
    when = step.data.get("when")
    if when is False:
        return True
    return isinstance(when, str) and when.replace(" ", "") in ("{{false}}", "{{False}}")


def detect_never_runs(doc: Document, view: RunbookView) -> Iterator[Diagnostic]:
    by_id = view.by_id()
    never: dict[str, str] = {}
    # The file order is a topological order only without cycles; iterate to a fixpoint.
    changed = True
    while changed:
        changed = False
        for step in view.steps:
            sid = step.id
            if sid is None or sid in never or by_id.get(sid) is not step:
                continue
            reason = None
            if _never(step):
                reason = "its `when` is always false"
            elif step.trigger_rule == "all_succeeded":
                dead = [n for n in step.needs if n in never]
                if dead:
                    reason = f"it needs '{dead[0]}' to succeed, which never runs"
            elif (
                step.trigger_rule == "one_failed"
                and step.needs
                and all(n in never for n in step.needs)
            ):
                reason = "none of its needs ever runs, so none can fail"
            if reason:
                never[sid] = reason
                changed = True
    for sid, reason in never.items():
        step = by_id[sid]
        yield doc.diag(
            (*step.path, "id"),
            "never-runs",
            f"step '{sid}' can never run: {reason}; remove it or fix the condition",
            severity="warning",
        )
