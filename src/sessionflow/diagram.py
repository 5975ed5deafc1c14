"""Diagrams of a lifecycle, drawn from the python-statemachine definition itself.

:func:`lifecycle_graph` reads a ``StateMachine`` class (by default
:class:`~sessionflow.domain.lifecycle.SessionLifecycle`) through its compiled decision table — states,
transitions, guards — so a picture can never drift from the rules the engine runs. The graph renders as

- Mermaid ``stateDiagram-v2`` text (:func:`to_mermaid`) and Graphviz DOT text (:func:`to_dot`), with no
  extra dependency;
- SVG (:func:`to_svg`) and PNG (:func:`to_png`): the DOT text laid out and drawn by Graphviz's ``dot``
  program (the ``graphviz`` system package: ``apt-get install graphviz``, ``brew install graphviz``). Without
  it they raise :class:`DiagramUnavailable`, saying what to install.

Every renderer takes optional ``counts`` (state value → number of sessions) to annotate the states, e.g.
with live counts from a database. :func:`to_dot` and :func:`to_svg` also mark one session's ``current`` state and
the ``path`` it took (:class:`Marks`); :func:`session_diagram` draws a session so, falling back to plain text
(:func:`to_text`) when Graphviz is missing. In the SVG each state is a group ``id="state:<value>"`` and each
transition a group ``id="transition:<event>:<source>:<target>"``, so tools and tests can read the picture's
structure whatever layout Graphviz chooses. Internal self-transitions (``record_file``, ``add_note``, ...)
are listed in the caption instead of drawn as loops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from statemachine import StateMachine

from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import SessionLifecycle
from sessionflow.domain.models import SessionEvent

__all__ = [
    "FORMATS",
    "SESSION_FORMATS",
    "DiagramUnavailable",
    "Edge",
    "LifecycleGraph",
    "Marks",
    "SessionDiagram",
    "StateNode",
    "lifecycle_graph",
    "render",
    "session_diagram",
    "title",
    "to_dot",
    "to_mermaid",
    "to_png",
    "to_svg",
    "to_text",
]

#: The formats :func:`render` knows; ``mermaid`` and ``dot`` need nothing, ``svg`` and ``png`` Graphviz's ``dot``.
FORMATS = ("mermaid", "dot", "svg", "png")

Format = Literal["mermaid", "dot", "svg", "png"]


class DiagramUnavailable(RuntimeError):
    """A format needs a program that is not installed (SVG and PNG need Graphviz's ``dot``)."""


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


@dataclass(frozen=True, slots=True)
class Marks:
    """One session drawn on its lifecycle: its ``current`` state and the transitions of its ``path``, each
    ``(event, source, target)`` in the order taken."""

    current: str
    path: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def of(cls, current: str, events: Iterable[SessionEvent]) -> Marks:
        """The marks of a session in state ``current`` with the history ``events`` (its changes of state)."""
        path = tuple((str(e.event), str(e.source_state), str(e.target_state)) for e in events
                     if e.source_state is not None and e.source_state != e.target_state)
        return cls(str(current), path)

    @property
    def visited(self) -> frozenset[str]:
        """The states the session has been in."""
        return frozenset({self.current, *(s for _, s, _ in self.path), *(t for _, _, t in self.path)})

    @property
    def taken(self) -> frozenset[tuple[str, str]]:
        """The ``(source, target)`` pairs of the transitions taken."""
        return frozenset((source, target) for _, source, target in self.path)


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
    return '"' + _escape(value) + '"'


def _escape(value: str) -> str:
    """``value`` inside a DOT string: backslashes and quotes escaped (DOT's own escapes are added after)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _lines(lines: list[str], end: str) -> str:
    """A DOT label of several lines, each ended by ``end`` (``\\l`` left-aligned, ``\\n`` centred)."""
    # a \\l ends the line it left-aligns, the last one too; a \\n only separates
    return '"' + end.join(_escape(line) for line in lines) + (end if end == "\\l" else "") + '"'


def _total(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} session" + ("" if total == 1 else "s")


def _caption(graph: LifecycleGraph) -> list[str]:
    """The lines under the title: the internal events, which keep the state and are not drawn as loops."""
    lines = []
    for events, sources in graph.internal:
        states = ", ".join(graph.state(s).label for s in sources)
        lines.append(f"{', '.join(events)}: allowed in {states}; the state stays")
    return lines


def title(graph: LifecycleGraph, counts: Mapping[str, int] | None = None) -> str:
    """The picture's title: "Session lifecycle" for the default lifecycle, else the machine's name; with
    ``counts``, followed by the number of sessions counted."""
    name = "Session lifecycle" if graph.name == SessionLifecycle.__name__ else graph.name
    return name if counts is None else f"{name} ({_total(counts)})"


#: Colours of the drawing: ink, the fill of a live state, the fill of a final state, muted text.
_INK, _FILL, _FINAL_FILL, _MUTED = "#1f2933", "#eef2f7", "#e3ebe3", "#52606d"
#: Colours of a session's marks: its current state, the states it went through, the transitions it took.
_CURRENT_FILL, _VISITED_FILL, _PATH = "#fde68a", "#dbeafe", "#1d4ed8"


def _state_marks(marks: Marks | None, value: str) -> str:
    if marks is None:
        return ""
    if value == marks.current:
        return f', fillcolor="{_CURRENT_FILL}", penwidth=3, class="current"'
    if value in marks.visited:
        return f', fillcolor="{_VISITED_FILL}", class="visited"'
    return ""


def _edge_marks(marks: Marks | None, edge: Edge) -> str:
    if marks is None or (edge.source, edge.target) not in marks.taken:
        return ""
    return f', color="{_PATH}", fontcolor="{_PATH}", penwidth=2.5, class="taken"'


def to_dot(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None, *,
           marks: Marks | None = None) -> str:
    """Graphviz DOT source (``sessionflow diagram --format dot | dot -Tpdf`` where Graphviz is installed).

    The title and the caption of internal events are the graph's label; final states have a double border;
    each state and transition carries the ``id`` its SVG group gets. With ``marks``, the session's current
    state is filled and bordered (SVG class ``current``), the states it went through filled (``visited``) and
    the transitions it took drawn in colour (``taken``).
    """
    graph = graph or lifecycle_graph()
    heading = _lines([title(graph, counts), *_caption(graph)], "\\l")
    lines = [f"digraph {_dot_id(graph.name)} {{",
             f'    graph [rankdir=LR, nodesep=0.45, ranksep=0.8, pad=0.25, fontname="Helvetica", fontsize=12, '
             f'fontcolor="{_MUTED}", labelloc=t, labeljust=l, label={heading}];',
             f'    node [shape=box, style="rounded,filled", fillcolor="{_FILL}", color="{_INK}", '
             f'fontname="Helvetica", fontsize=13, fontcolor="{_INK}", margin="0.2,0.1"];',
             f'    edge [fontname="Helvetica", fontsize=11, color="{_INK}", fontcolor="{_INK}"];']
    for state in graph.states:
        extra = (f', peripheries=2, fillcolor="{_FINAL_FILL}"' if state.final else "") + _state_marks(
            marks, state.value)
        text = state.label + _count_suffix(counts, state.value)
        lines.append(f"    {_dot_id(state.value)} [label={_dot_id(text)}, "
                     f"id={_dot_id('state:' + state.value)}{extra}];")
    for state in graph.states:
        if state.initial:
            lines.append(f'    "__initial__" [shape=point, width=0.15, style=filled, fillcolor="{_INK}", '
                         'label="", id="initial"];')
            lines.append(f'    "__initial__" -> {_dot_id(state.value)} [id="initial:{state.value}"];')
    for edge in graph.edges:
        text = _lines([edge.event, edge.guard_text], "\\n") if edge.guards else _dot_id(edge.event)
        ident = f"transition:{edge.event}:{edge.source}:{edge.target}"
        lines.append(f"    {_dot_id(edge.source)} -> {_dot_id(edge.target)} "
                     f"[label={text}, id={_dot_id(ident)}{_edge_marks(marks, edge)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- Graphviz

#: What to install when ``dot`` is missing.
_INSTALL = ("SVG and PNG output need Graphviz's dot program, which was not found on PATH: install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz); "
            "--format mermaid and --format dot need nothing")


def _graphviz(source: str, *arguments: str) -> bytes:
    """``source`` laid out and drawn by ``dot`` with ``arguments`` (e.g. ``-Tsvg``)."""
    program = shutil.which("dot")
    if program is None:
        raise DiagramUnavailable(_INSTALL)
    try:
        done = subprocess.run([program, *arguments], input=source.encode("utf-8"), capture_output=True,
                              timeout=60, check=False, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DiagramUnavailable(f"Graphviz's dot could not run: {error}") from error
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise DiagramUnavailable(f"Graphviz's dot failed: {message}")
    return done.stdout


def to_svg(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None, *,
           marks: Marks | None = None) -> str:
    """An SVG picture of the lifecycle, laid out by Graphviz (with ``marks``: one session's state and path, see
    :func:`to_dot`).

    Raises :class:`DiagramUnavailable` when Graphviz's ``dot`` is not installed.
    """
    return _graphviz(to_dot(graph, counts, marks=marks), "-Tsvg").decode("utf-8")


def to_png(graph: LifecycleGraph | None = None, counts: Mapping[str, int] | None = None, *,
           scale: float = 2.0) -> bytes:
    """A PNG picture of the lifecycle, laid out by Graphviz, at ``scale`` times the SVG's size.

    Raises :class:`DiagramUnavailable` when Graphviz's ``dot`` is not installed, ``ValueError`` for a
    ``scale`` that is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    return _graphviz(to_dot(graph, counts), "-Tpng", f"-Gdpi={72 * scale:g}")


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


# ---------------------------------------------------------------------------------------------- one session


def to_text(graph: LifecycleGraph, marks: Marks) -> str:
    """A session on its lifecycle as plain text: the current state, the path taken, and every state with its
    transitions (``*`` the current state, ``+`` a state it went through, ``>`` a transition it took)."""
    current = graph.state(marks.current).label if any(s.value == marks.current for s in graph.states) else (
        marks.current)
    lines = [f"{title(graph)}: now {current}"]
    if marks.path:
        steps = " ".join(f"--{event}--> {target}" for event, _, target in marks.path)
        lines.append(f"path: {marks.path[0][1]} {steps}")
    else:
        lines.append("path: none yet")
    for state in graph.states:
        sign = "*" if state.value == marks.current else "+" if state.value in marks.visited else " "
        final = " (final)" if state.final else ""
        lines.append(f"{sign} {state.label}{final}")
        for edge in graph.edges:
            if edge.source == state.value:
                taken = ">" if (edge.source, edge.target) in marks.taken else " "
                guard = f" {edge.guard_text}" if edge.guards else ""
                lines.append(f"    {taken} {edge.event}{guard} -> {graph.state(edge.target).label}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class SessionDiagram:
    """A session drawn on its lifecycle: ``content`` in ``format`` (``"svg"``, ``"dot"`` or ``"text"``), and the
    ``marks`` drawn (its current state and path)."""

    format: str
    content: str
    marks: Marks


#: The formats of :func:`session_diagram`.
SESSION_FORMATS = ("svg", "dot", "text")


def session_diagram(machine_class: type[StateMachine], current: str, events: Iterable[SessionEvent],
                    fmt: str = "svg") -> SessionDiagram:
    """A session in state ``current`` with the history ``events`` drawn on its lifecycle ``machine_class``:
    SVG (laid out by Graphviz; plain text, :func:`to_text`, when ``dot`` is missing or fails), DOT source or
    plain text. Raises ``ValueError`` for another ``fmt``."""
    if fmt not in SESSION_FORMATS:
        raise ValueError(f"unknown session diagram format {fmt!r}; expected one of {', '.join(SESSION_FORMATS)}")
    graph = lifecycle_graph(machine_class)
    marks = Marks.of(current, events)
    if fmt == "svg":
        try:
            return SessionDiagram("svg", to_svg(graph, marks=marks), marks)
        except DiagramUnavailable:
            fmt = "text"
    if fmt == "dot":
        return SessionDiagram("dot", to_dot(graph, marks=marks), marks)
    return SessionDiagram("text", to_text(graph, marks), marks)
