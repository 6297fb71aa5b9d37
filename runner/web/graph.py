"""The plan as a graph, laid out here and drawn as SVG by the page's template: no
script, no library in the browser. Steps sit in columns by depth (the longest chain
of `needs` before them); edges join a step to what it needs."""

from __future__ import annotations

from dataclasses import dataclass

from runner.contract.state import RunView
from runner.plan.model import Plan

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 150, 34, 50, 14, 10


@dataclass(frozen=True)
class Box:
    id: str
    x: int
    y: int
    status: str
    label: str


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Graph:
    width: int
    height: int
    boxes: list[Box]
    edges: list[Edge]


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layout(plan: Plan, view: RunView | None = None) -> Graph:
    nodes = [*plan.nodes, *plan.finally_nodes]
    known = {n.id for n in nodes}
    depth: dict[str, int] = {}
    for node in nodes:  # the plan lists a step after what it needs
        needs = [n for n in node.needs if n in known]
        depth[node.id] = 1 + max((depth.get(n, 0) for n in needs), default=-1)
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(depth[node.id], []).append(node.id)
    place: dict[str, tuple[int, int]] = {}
    for column, ids in columns.items():
        for row, sid in enumerate(ids):
            place[sid] = (PAD + column * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    steps = view.steps if view is not None else {}
    boxes = [
        Box(
            n.id,
            *place[n.id],
            steps[n.id].status if n.id in steps else "pending",
            _short(n.id),
        )
        for n in nodes
    ]
    edges = [
        Edge(
            place[need][0] + BOX_W,
            place[need][1] + BOX_H // 2,
            place[n.id][0],
            place[n.id][1] + BOX_H // 2,
        )
        for n in nodes
        for need in n.needs
        if need in place
    ]
    width = PAD * 2 + max(len(columns), 1) * (BOX_W + GAP_X) - GAP_X
    tallest = max((len(ids) for ids in columns.values()), default=1)
    height = PAD * 2 + tallest * (BOX_H + GAP_Y) - GAP_Y
    return Graph(width, height, boxes, edges)
