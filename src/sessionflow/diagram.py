"""Diagrams of the session lifecycle, drawn from the python-statemachine definition itself.

:func:`lifecycle_graph` reads a ``StateMachine`` class (by default
:class:`~sessionflow.domain.lifecycle.SessionLifecycle`) through its compiled decision table — states,
transitions, guards — so a picture can never drift from the rules the engine runs. The graph renders as

- Mermaid ``stateDiagram-v2`` text (:func:`to_mermaid`) and Graphviz DOT text (:func:`to_dot`), with no
  extra dependency;
- SVG (:func:`to_svg`), drawn by a small layered layout in pure Python, with no extra dependency;
- PNG (:func:`to_png`), the same drawing rasterised with Pillow (the optional ``diagram`` extra).

Every renderer takes optional ``counts`` (state value → number of sessions) to annotate the states, e.g.
with live counts from a database. Without counts the output is deterministic, so the pictures in
``docs/`` are checked against it by the tests.

The layout puts each state in the column of its longest path from the initial state, follows the first
transitions from the initial state along the top row, stacks the other states below, and routes edges
orthogonally: along the row, or down from the source and then right into the target (lines that meet
lead to the same state). Internal self-transitions (``record_file``, ``add_note``, ...) are listed in a
caption instead of drawn as loops.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from statemachine import StateMachine

from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import SessionLifecycle

__all__ = [
    "FORMATS",
    "DiagramUnavailable",
    "Edge",
    "LifecycleGraph",
    "StateNode",
    "lifecycle_graph",
    "render",
    "to_dot",
    "to_mermaid",
    "to_png",
    "to_svg",
]

#: The formats :func:`render` knows; the first two and ``svg`` need nothing beyond sessionflow itself.
FORMATS = ("mermaid", "dot", "svg", "png")

Format = Literal["mermaid", "dot", "svg", "png"]


class DiagramUnavailable(RuntimeError):
    """A format needs an optional dependency that is not installed (PNG needs Pillow)."""


@dataclass(frozen=True, slots=True)
class StateNode:
    """A state: its stored ``value``, its human ``label`` and whether it is the initial or a final state."""

    value: str
    label: str
    initial: bool
    final: bool


@dataclass(frozen=True, slots=True)
class Edge:
    """A transition between two different states, with the names of its guards (``not g`` for ``unless``)."""

    event: str
    source: str
    target: str
    guards: tuple[str, ...]

    @property
    def guard_text(self) -> str:
        return f"[{' and '.join(self.guards)}]" if self.guards else ""


@dataclass(frozen=True, slots=True)
class LifecycleGraph:
    """The drawable content of a lifecycle: states, edges and the internal (state-keeping) events."""

    name: str
    states: tuple[StateNode, ...]
    edges: tuple[Edge, ...]
    #: ``(events, states)`` groups: these events are allowed in these states and keep the state.
    internal: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    def state(self, value: str) -> StateNode:
        return next(s for s in self.states if s.value == value)


def lifecycle_graph(machine_class: type[StateMachine] = SessionLifecycle) -> LifecycleGraph:
    """The graph of ``machine_class``, read through :class:`~sessionflow.domain.decision.CompiledLifecycle`."""
    compiled = CompiledLifecycle(machine_class)
    states = tuple(
        StateNode(value=str(s.value), label=str(s.name), initial=bool(s.initial), final=bool(s.final))
        for s in machine_class.states
    )
    declared = [str(getattr(e, "id", e)) for e in getattr(machine_class, "events", ())]
    events = [e for e in declared if e in compiled.events] + [e for e in compiled.events if e not in declared]
    edges: list[Edge] = []
    internal: dict[str, list[str]] = {}
    for state in compiled.states:
        for event in events:
            for transition in compiled.transitions(state, event):
                if transition.source == transition.target:
                    internal.setdefault(event, [])
                    if state not in internal[event]:
                        internal[event].append(state)
                    continue
                guards = tuple(g.name if g.expected else f"not {g.name}" for g in transition.guards)
                edges.append(Edge(event, transition.source, transition.target, guards))
    groups: dict[tuple[str, ...], list[str]] = {}
    for event, sources in internal.items():
        groups.setdefault(tuple(sources), []).append(event)
    return LifecycleGraph(
        name=machine_class.__name__,
        states=states,
        edges=tuple(edges),
        internal=tuple((tuple(events), sources) for sources, events in groups.items()),
    )


def _count_suffix(counts: Mapping[str, int] | None, value: str) -> str:
    if counts is None:
        return ""
    return f" ({counts.get(value, 0)})"


# ---------------------------------------------------------------------------------------------- text formats


def to_mermaid(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None) -> str:
    """Mermaid ``stateDiagram-v2`` source; with ``counts``, each state's label ends with ``(n)``."""
    graph = graph or lifecycle_graph()
    lines = ["stateDiagram-v2", "    direction LR"]
    for state in graph.states:
        lines.append(f'    state "{state.label}{_count_suffix(counts, state.value)}" as {state.value}')
    lines.extend(f"    [*] --> {s.value}" for s in graph.states if s.initial)
    for edge in graph.edges:
        label = f"{edge.event} {edge.guard_text}".strip()
        lines.append(f"    {edge.source} --> {edge.target} : {label}")
    lines.extend(f"    {s.value} --> [*]" for s in graph.states if s.final)
    for events, sources in graph.internal:
        lines.append(f"    %% internal, the state stays: {', '.join(events)} (in {', '.join(sources)})")
    return "\n".join(lines) + "\n"


def _dot_id(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None) -> str:
    """Graphviz DOT source (``sessionflow diagram --format dot | dot -Tpng`` where Graphviz is installed)."""
    graph = graph or lifecycle_graph()
    lines = [f"digraph {_dot_id(graph.name)} {{", "    rankdir=LR;",
             '    node [shape=box, style=rounded, fontname="Helvetica", fontsize=12];',
             '    edge [fontname="Helvetica", fontsize=10];']
    for state in graph.states:
        extra = ", peripheries=2" if state.final else ""
        label = state.label + _count_suffix(counts, state.value)
        lines.append(f"    {_dot_id(state.value)} [label={_dot_id(label)}{extra}];")
    for state in graph.states:
        if state.initial:
            lines.append("    __initial__ [shape=point, width=0.15, label=\"\"];")
            lines.append(f"    __initial__ -> {_dot_id(state.value)};")
    for edge in graph.edges:
        label = f"{edge.event}\\n{edge.guard_text}" if edge.guards else edge.event
        lines.append(f'    {_dot_id(edge.source)} -> {_dot_id(edge.target)} [label="{label}"];')
    if graph.internal:
        notes = "\\l".join(f"{', '.join(events)}: keep the state ({', '.join(sources)})"
                           for events, sources in graph.internal)
        lines.append(f'    label="{notes}\\l"; labelloc=b; labeljust=l; fontname="Helvetica"; fontsize=10;')
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- layout

Role = Literal["title", "state", "count", "event", "guard", "caption"]
Measure = Callable[[str, "Role"], float]

#: Font sizes (px) of each kind of text.
FONT_SIZES: dict[str, int] = {"title": 15, "state": 14, "count": 11, "event": 12, "guard": 10, "caption": 11}

_NARROW = set("il.,:;|!'`[]()fjrtI ")
_WIDE = set("mwMW@%")


def estimate_width(text: str, role: Role) -> float:
    """A generous estimate of the rendered width of ``text`` in a Helvetica/Arial-like font."""
    size = FONT_SIZES[role]
    units = 0.0
    for ch in text:
        if ch in _NARROW:
            units += 0.32
        elif ch in _WIDE:
            units += 0.86
        elif ch.isupper():
            units += 0.7
        else:
            units += 0.58
    return units * size


@dataclass(slots=True)
class _Box:
    state: StateNode
    column: int
    row: int
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0  # left
    y: float = 0.0  # top

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        return self.y + self.height / 2

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass(slots=True)
class _Route:
    edge: Edge
    points: list[tuple[float, float]]
    label_at: tuple[float, float] = (0.0, 0.0)  # centre of the label, baseline of the event line


@dataclass(slots=True)
class _Layout:
    width: float
    height: float
    title: str
    boxes: dict[str, _Box]
    routes: list[_Route]
    dots: list[tuple[float, float]]
    initial: list[tuple[tuple[float, float], tuple[float, float]]]  # (dot centre, arrow end)
    caption: list[str]
    caption_y: float
    counts: Mapping[str, int] | None = None


_PAD_X = 16.0
_MIN_BOX = 112.0
_BOX_H = 44.0
_BOX_H_COUNTS = 58.0
_GAP_MIN = 70.0
_LABEL_MARGIN = 18.0
_ROW_GAP = 46.0
_MARGIN = 24.0
_INITIAL_SPACE = 44.0


def _ranks(graph: LifecycleGraph) -> dict[str, int]:
    """Longest path from the initial state(s) over forward edges (cycles are cut)."""
    rank = {s.value: 0 for s in graph.states}
    outgoing: dict[str, list[str]] = {}
    for edge in graph.edges:
        outgoing.setdefault(edge.source, []).append(edge.target)

    def visit(value: str, depth: int, path: frozenset[str]) -> None:
        if depth < rank[value]:
            return
        rank[value] = depth
        for target in outgoing.get(value, []):
            if target not in path:
                visit(target, depth + 1, path | {target})

    for state in graph.states:
        if state.initial:
            visit(state.value, 0, frozenset({state.value}))
    return rank


def _place(graph: LifecycleGraph) -> dict[str, _Box]:
    rank = _ranks(graph)
    boxes: dict[str, _Box] = {}
    current = next((s for s in graph.states if s.initial), graph.states[0])
    while current.value not in boxes:  # the spine: first transitions one column at a time, top row
        boxes[current.value] = _Box(current, rank[current.value], 0)
        following = next((e.target for e in graph.edges if e.source == current.value
                          and rank[e.target] == rank[current.value] + 1 and e.target not in boxes), None)
        if following is None:
            break
        current = graph.state(following)
    used: dict[int, int] = {}
    for box in boxes.values():
        used[box.column] = max(used.get(box.column, -1), box.row)
    for state in sorted(graph.states, key=lambda s: rank[s.value]):  # stable: declaration order within a rank
        if state.value not in boxes:
            row = used.get(rank[state.value], -1) + 1
            used[rank[state.value]] = row
            boxes[state.value] = _Box(state, rank[state.value], row)
    return boxes


def _layout(graph: LifecycleGraph, measure: Measure, counts: Mapping[str, int] | None) -> _Layout:
    boxes = _place(graph)
    box_h = _BOX_H_COUNTS if counts is not None else _BOX_H
    for box in boxes.values():
        text = measure(box.state.label, "state")
        if counts is not None:
            text = max(text, measure(_count_text(counts, box.state.value), "count"))
        box.width = max(_MIN_BOX, text + 2 * _PAD_X)
        box.height = box_h
    columns = max(b.column for b in boxes.values()) + 1
    col_width = [max((b.width for b in boxes.values() if b.column == c), default=_MIN_BOX) for c in range(columns)]

    def label_width(edge: Edge) -> float:
        return max(measure(edge.event, "event"), measure(edge.guard_text, "guard")) + 2 * _LABEL_MARGIN

    gaps = [_GAP_MIN] * max(columns - 1, 0)
    for edge in graph.edges:  # straight edges along a row need their label to fit in the gap(s)
        s, t = boxes[edge.source], boxes[edge.target]
        if s.row == t.row and t.column == s.column + 1:
            gaps[s.column] = max(gaps[s.column], label_width(edge))

    title_h = 30.0
    top = _MARGIN + title_h + 18.0  # room for the labels of top-row edges above their lines

    def position() -> None:
        x = _MARGIN + _INITIAL_SPACE
        lefts = []
        for c in range(columns):
            lefts.append(x)
            x += col_width[c] + (gaps[c] if c < columns - 1 else 0)
        for box in boxes.values():
            box.x = lefts[box.column] + (col_width[box.column] - box.width) / 2
            box.y = top + box.row * (box_h + _ROW_GAP)

    position()
    # A label on a corner route sits between its corner and the next corner into the same target (or the
    # target itself): widen the gap just before that point until it fits.
    for _ in range(len(graph.edges) + 1):
        changed = False
        for edge in graph.edges:
            s, t = boxes[edge.source], boxes[edge.target]
            if t.row > s.row and t.column > s.column:
                end, end_column = _corner_span_end(graph, boxes, edge)
                deficit = label_width(edge) - (end - s.cx)
                if deficit > 0.5 and end_column > 0:
                    gaps[end_column - 1] += deficit
                    changed = True
                    position()
        if not changed:
            break

    routes: list[_Route] = []
    back_lane = top - 26.0
    for edge in graph.edges:
        s, t = boxes[edge.source], boxes[edge.target]
        blocked = any(b.row == s.row and s.column < b.column < t.column for b in boxes.values())
        if t.column > s.column and t.row == s.row and not blocked:
            points = [(s.right, s.cy), (t.x, t.cy)]
            label = ((s.right + t.x) / 2, s.cy - 8)
        elif t.column > s.column and t.row > s.row:
            points = [(s.cx, s.bottom), (s.cx, t.cy), (t.x, t.cy)]
            end, _ = _corner_span_end(graph, boxes, edge)
            label = ((s.cx + end) / 2, t.cy - 8)
        elif t.column > s.column and t.row < s.row:  # upwards: right, then up into the target's bottom
            points = [(s.right, s.cy), (t.cx, s.cy), (t.cx, t.bottom)]
            label = ((s.right + t.cx) / 2, s.cy - 8)
        else:  # backwards or within a column: over the top, on a lane of its own
            back_lane -= 34.0
            out_x, in_x = s.x + s.width * 2 / 3, t.x + t.width / 3  # leave and enter apart from other lanes
            points = [(out_x, s.y), (out_x, back_lane), (in_x, back_lane), (in_x, t.y)]
            label = ((out_x + in_x) / 2, back_lane - 8)
        routes.append(_Route(edge, points, label))
    shift = max(0.0, (_MARGIN + title_h) - (back_lane - 30.0)) if back_lane < top - 26.0 else 0.0
    if shift:
        for box in boxes.values():
            box.y += shift
        for route in routes:
            route.points = [(x, y + shift) for x, y in route.points]
            route.label_at = (route.label_at[0], route.label_at[1] + shift)

    dots = _junctions(routes)
    initial = []
    for box in boxes.values():
        if box.state.initial:
            initial.append(((box.x - _INITIAL_SPACE + 8, box.cy), (box.x, box.cy)))
    right = max(b.right for b in boxes.values())
    bottom = max(b.bottom for b in boxes.values())
    caption = [f"{', '.join(events)}: allowed in {_and(graph.state(v).label for v in sources)}; the state stays"
               for events, sources in graph.internal]
    caption_y = bottom + 30.0
    height = (caption_y + (len(caption) - 1) * 16.0 if caption else bottom) + _MARGIN
    width = right + _MARGIN
    for line in caption:
        width = max(width, _MARGIN + measure(line, "caption") + _MARGIN)
    title = "Session lifecycle" if graph.name == "SessionLifecycle" else graph.name
    if counts is not None:
        total = sum(counts.values())
        title += f" ({total} session{'' if total == 1 else 's'})"
    width = max(width, _MARGIN + measure(title, "title") + _MARGIN)
    return _Layout(width=round(width), height=round(height), title=title, boxes=boxes, routes=routes, dots=dots,
                   initial=initial, caption=caption, caption_y=caption_y, counts=counts)


def _and(items: Iterable[str]) -> str:
    words = list(items)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _corner_span_end(graph: LifecycleGraph, boxes: Mapping[str, _Box], edge: Edge) -> tuple[float, int]:
    """Where the horizontal part of a corner route stops being its own: the next corner into the same
    target, or the target; with the column of the box there."""
    s, t = boxes[edge.source], boxes[edge.target]
    end, column = t.x, t.column
    for other in graph.edges:
        o = boxes[other.source]
        if other.target == edge.target and other is not edge and o.row < t.row and s.cx < o.cx < end:
            end, column = o.cx, o.column
    return end, column


def _junctions(routes: Sequence[_Route]) -> list[tuple[float, float]]:
    """Corners where two or more routes meet: drawn as dots (lines that meet lead to the same state)."""
    corners = {p for r in routes for p in r.points[1:-1]}
    dots = []
    for corner in sorted(corners):
        passing = sum(1 for r in routes if _on_route(corner, r.points))
        if passing >= 2:
            dots.append(corner)
    return dots


def _on_route(point: tuple[float, float], points: Sequence[tuple[float, float]]) -> bool:
    px, py = point
    for (x1, y1), (x2, y2) in pairwise(points):
        if x1 == x2 == px and min(y1, y2) <= py <= max(y1, y2):
            return True
        if y1 == y2 == py and min(x1, x2) <= px <= max(x1, x2):
            return True
    return False


def _count_text(counts: Mapping[str, int], value: str) -> str:
    n = counts.get(value, 0)
    return f"{n} session" + ("" if n == 1 else "s")


def _arrowhead(points: Sequence[tuple[float, float]], size: float = 8.0) -> list[tuple[float, float]]:
    (x1, y1), (x2, y2) = points[-2], points[-1]
    dx, dy = x2 - x1, y2 - y1
    length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / length, dy / length
    bx, by = x2 - ux * size, y2 - uy * size
    return [(x2, y2), (bx - uy * size / 2, by + ux * size / 2), (bx + uy * size / 2, by - ux * size / 2)]


# ---------------------------------------------------------------------------------------------- SVG

_INK = "#1f2933"
_MUTED = "#52606d"
_FILL = "#f0f4f8"
_FINAL_FILL = "#e3f2e8"
_FONT = "Helvetica, Arial, sans-serif"


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def to_svg(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None) -> str:
    """An SVG picture of the lifecycle (pure Python; deterministic when ``counts`` is ``None``)."""
    graph = graph or lifecycle_graph()
    lay = _layout(graph, estimate_width, counts)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(lay.width)}" height="{_n(lay.height)}" '
        f'viewBox="0 0 {_n(lay.width)} {_n(lay.height)}" font-family="{_FONT}" role="img" '
        f"aria-label={quoteattr(lay.title)}>",
        f"<title>{escape(lay.title)}</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{_n(_MARGIN)}" y="{_n(_MARGIN + 14)}" font-size="{FONT_SIZES["title"]}" font-weight="bold" '
        f'fill="{_INK}">{escape(lay.title)}</text>',
    ]
    for route in lay.routes:
        path = " ".join(f"{_n(x)},{_n(y)}" for x, y in route.points[:-1])
        end = _arrowhead(route.points)
        bx, by = (end[1][0] + end[2][0]) / 2, (end[1][1] + end[2][1]) / 2
        out.append(f'<polyline points="{path} {_n(bx)},{_n(by)}" fill="none" stroke="{_INK}" stroke-width="1.4"/>')
        out.append(f'<polygon points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in end)}" fill="{_INK}"/>')
    for x, y in lay.dots:
        out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{_INK}"/>')
    for (cx, cy), target in lay.initial:
        out.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="6" fill="{_INK}"/>')
        head = _arrowhead([(cx + 6, cy), target])
        base = ((head[1][0] + head[2][0]) / 2, (head[1][1] + head[2][1]) / 2)
        out.append(f'<line x1="{_n(cx + 6)}" y1="{_n(cy)}" x2="{_n(base[0])}" y2="{_n(base[1])}" '
                   f'stroke="{_INK}" stroke-width="1.4"/>')
        out.append(f'<polygon points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in head)}" fill="{_INK}"/>')
    for route in lay.routes:
        lx, ly = route.label_at
        if route.edge.guards:
            ly -= 12
        out.append(f'<text x="{_n(lx)}" y="{_n(ly)}" font-size="{FONT_SIZES["event"]}" font-weight="bold" '
                   f'text-anchor="middle" fill="{_INK}">{escape(route.edge.event)}</text>')
        if route.edge.guards:
            out.append(f'<text x="{_n(lx)}" y="{_n(ly + 12)}" font-size="{FONT_SIZES["guard"]}" '
                       f'font-style="italic" text-anchor="middle" fill="{_MUTED}">'
                       f"{escape(route.edge.guard_text)}</text>")
    for box in lay.boxes.values():
        fill = _FINAL_FILL if box.state.final else _FILL
        out.append(f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.width)}" height="{_n(box.height)}" '
                   f'rx="10" fill="{fill}" stroke="{_INK}" stroke-width="1.4"/>')
        if box.state.final:
            out.append(f'<rect x="{_n(box.x + 3)}" y="{_n(box.y + 3)}" width="{_n(box.width - 6)}" '
                       f'height="{_n(box.height - 6)}" rx="8" fill="none" stroke="{_INK}" stroke-width="0.8"/>')
        label_y = box.cy + 5 if counts is None else box.cy - 2
        out.append(f'<text x="{_n(box.cx)}" y="{_n(label_y)}" font-size="{FONT_SIZES["state"]}" '
                   f'text-anchor="middle" fill="{_INK}">{escape(box.state.label)}</text>')
        if counts is not None:
            out.append(f'<text x="{_n(box.cx)}" y="{_n(box.cy + 15)}" font-size="{FONT_SIZES["count"]}" '
                       f'text-anchor="middle" fill="{_MUTED}">{escape(_count_text(counts, box.state.value))}'
                       "</text>")
    for index, line in enumerate(lay.caption):
        out.append(f'<text x="{_n(_MARGIN)}" y="{_n(lay.caption_y + index * 16)}" '
                   f'font-size="{FONT_SIZES["caption"]}" fill="{_MUTED}">{escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------- PNG


def to_png(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None, *,
           scale: float = 2.0) -> bytes:
    """A PNG picture of the lifecycle, drawn with Pillow at ``scale`` times the SVG's size.

    Raises :class:`DiagramUnavailable` when Pillow (the ``diagram`` extra) is not installed.
    """
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise DiagramUnavailable(
            "PNG output needs Pillow: pip install 'sessionflow[diagram]' (mermaid, dot and svg need nothing)"
        ) from None
    graph = graph or lifecycle_graph()
    fonts = {role: ImageFont.load_default(size=round(size * scale)) for role, size in FONT_SIZES.items()}

    def measure(text: str, role: Role) -> float:
        return float(fonts[role].getlength(text)) / scale * 1.04

    lay = _layout(graph, measure, counts)

    def s(value: float) -> float:
        return value * scale

    def pts(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(s(x), s(y)) for x, y in points]

    image = Image.new("RGB", (round(s(lay.width)), round(s(lay.height))), "#ffffff")
    draw = ImageDraw.Draw(image)
    width = max(1, round(1.4 * scale))
    draw.text((s(_MARGIN), s(_MARGIN + 14)), lay.title, fill=_INK, font=fonts["title"], anchor="ls",
              stroke_width=max(0, round(scale / 3)), stroke_fill=_INK)
    for route in lay.routes:
        head = _arrowhead(route.points)
        base = ((head[1][0] + head[2][0]) / 2, (head[1][1] + head[2][1]) / 2)
        draw.line(pts([*route.points[:-1], base]), fill=_INK, width=width, joint="curve")
        draw.polygon(pts(head), fill=_INK)
    for x, y in lay.dots:
        draw.ellipse([s(x - 3), s(y - 3), s(x + 3), s(y + 3)], fill=_INK)
    for (cx, cy), end in lay.initial:
        draw.ellipse([s(cx - 6), s(cy - 6), s(cx + 6), s(cy + 6)], fill=_INK)
        head = _arrowhead([(cx + 6, cy), end])
        base = ((head[1][0] + head[2][0]) / 2, (head[1][1] + head[2][1]) / 2)
        draw.line(pts([(cx + 6, cy), base]), fill=_INK, width=width)
        draw.polygon(pts(head), fill=_INK)
    for route in lay.routes:
        lx, ly = route.label_at
        if route.edge.guards:
            ly -= 12
        draw.text((s(lx), s(ly)), route.edge.event, fill=_INK, font=fonts["event"], anchor="ms",
                  stroke_width=max(0, round(scale / 4)), stroke_fill=_INK)
        if route.edge.guards:
            draw.text((s(lx), s(ly + 12)), route.edge.guard_text, fill=_MUTED, font=fonts["guard"], anchor="ms")
    for box in lay.boxes.values():
        fill = _FINAL_FILL if box.state.final else _FILL
        draw.rounded_rectangle([s(box.x), s(box.y), s(box.right), s(box.bottom)], radius=s(10), fill=fill,
                               outline=_INK, width=width)
        if box.state.final:
            draw.rounded_rectangle([s(box.x + 3), s(box.y + 3), s(box.right - 3), s(box.bottom - 3)], radius=s(8),
                                   outline=_INK, width=max(1, round(0.8 * scale)))
        label_y = box.cy + 5 if counts is None else box.cy - 2
        draw.text((s(box.cx), s(label_y)), box.state.label, fill=_INK, font=fonts["state"], anchor="ms")
        if counts is not None:
            draw.text((s(box.cx), s(box.cy + 15)), _count_text(counts, box.state.value), fill=_MUTED,
                      font=fonts["count"], anchor="ms")
    for index, line in enumerate(lay.caption):
        draw.text((s(_MARGIN), s(lay.caption_y + index * 16)), line, fill=_MUTED, font=fonts["caption"], anchor="ls")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- dispatch


def render(fmt: str, graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None) -> bytes:
    """The diagram in ``fmt`` (one of :data:`FORMATS`) as bytes (UTF-8 for the text formats)."""
    if fmt == "mermaid":
        return to_mermaid(graph, counts).encode("utf-8")
    if fmt == "dot":
        return to_dot(graph, counts).encode("utf-8")
    if fmt == "svg":
        return to_svg(graph, counts).encode("utf-8")
    if fmt == "png":
        return to_png(graph, counts)
    raise ValueError(f"unknown diagram format {fmt!r}; expected one of {', '.join(FORMATS)}")
