"""Draws docs/architecture.svg (and .png): the parts of the package in their layers, and who imports whom.

Run ``python -m tests.architecture.picture`` after a change of the import graph; the architecture test checks
that the committed picture shows the graph as it is (every arrow drawn is an ``<g id="import:a:b">``). The
arrows are the transitive reduction of the imports between parts: an import implied by a path of others is
not drawn (docs/architecture.md lists every allowed import).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.architecture.imports import import_graph

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "sessionflow"
OUTPUT = ROOT / "docs" / "architecture.svg"

#: The layers, outermost at the top, and the parts in each (drawn as a row, named on the left).
LAYERS: list[tuple[str, list[str]]] = [
    ("entry points", ["__main__", "pytest_plugin"]),
    ("console", ["entrypoints.http.console"]),
    ("entry points, test kit", ["entrypoints", "scenarios", "testing.contract"]),
    ("package root, test kit", ["", "testing"]),
    ("asyncio wiring", ["aio"]),
    ("wiring", ["bootstrap"]),
    ("store wiring", ["stores"]),
    ("adapters, configuration", ["adapters", "settings", "diagram", "loader"]),
    ("application", ["application"]),
    ("domain", ["domain"]),
    ("errors", ["errors"]),
]
LABELS = {"": "sessionflow\n(__init__: the public names)", "entrypoints": "entrypoints\n(cli/, http/)",
          "adapters": "adapters\n(memory, sqlalchemy/, apscheduler,\naio, jsonl, metrics)",
          "aio": "aio\n(AsyncSessionManager's constructors)",
          "testing.contract": "testing.contract\n(the store contract suite)",
          "entrypoints.http.console": "entrypoints.http.console\n(the operator's console at /ui)",
          "stores": "stores\n(the backends by URL scheme,\nthe wiring both facades share)",
          "application": "application\n(manager, pipeline, commands, reads,\ntimeouts, delivery, validation, ports)",
          "domain": "domain\n(models, lifecycle, definitions, decision,\ndeadlines, replay, values)"}


#: Subpackages that are parts of their own, with a row of their own in the import table.
SUBPARTS = ("testing.contract", "entrypoints.http.console")


def part(module: str) -> str:
    """``sessionflow.application.manager`` -> ``application``; the package root -> ``""``; a module of a
    subpackage of :data:`SUBPARTS` -> that subpackage (``testing.contract``)."""
    parts = module.split(".")
    inside = ".".join(parts[1:])
    for sub in SUBPARTS:
        if inside == sub or inside.startswith(sub + "."):
            return sub
    return parts[1] if len(parts) > 1 else ""


def part_edges() -> set[tuple[str, str]]:
    """(importer, imported) between parts of the package, from the source."""
    graph = import_graph(SRC)
    return {(part(a), part(b)) for a, targets in graph.edges.items() for b in targets if part(a) != part(b)}


def reduced(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The transitive reduction: an import implied by a path of others is not drawn."""
    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [b for a, b in edges if a == start and (a, b) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += [b for a, b in edges if a == node]
        return seen

    return {(a, b) for a, b in edges if b not in reachable(a, (a, b))}


def to_dot() -> str:
    """The picture as Graphviz DOT: a row per layer (outermost on top), an arrow per drawn import."""
    def node(name: str) -> str:
        return '"' + (name or "sessionflow") + '"'

    lines = ["digraph architecture {",
             '    graph [rankdir=TB, nodesep=0.35, ranksep=0.45, pad=0.2, fontname="Helvetica", fontsize=11];',
             '    node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#3b5b8c", '
             'fontname="Helvetica", fontsize=11, margin="0.15,0.06"];',
             '    edge [color="#8a8a8a", arrowsize=0.7];']
    for index, (title, names) in enumerate(LAYERS):
        lines.append(f'    "layer{index}" [shape=plaintext, style="", label="{title}", fontcolor="#777777"];')
        members = " ".join(f"{node(n)};" for n in names)
        lines.append(f'    {{ rank=same; "layer{index}"; {members} }}')
        if index:
            lines.append(f'    "layer{index - 1}" -> "layer{index}" [style=invis];')
    for name, label in LABELS.items():
        text = label.replace("\n", "\\n")
        lines.append(f'    {node(name)} [label="{text}"];')
    for source, target in sorted(reduced(part_edges())):
        ident = f"import:{source or 'sessionflow'}:{target or 'sessionflow'}"
        lines.append(f'    {node(source)} -> {node(target)} [id="{ident}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(output: Path = OUTPUT) -> None:
    """Write ``output`` (SVG) and the PNG beside it, laid out by Graphviz's ``dot``."""
    source = to_dot().encode("utf-8")
    for fmt, path in (("svg", output), ("png", output.with_suffix(".png"))):
        done = subprocess.run(["dot", f"-T{fmt}", "-Gdpi=110" if fmt == "png" else "-Gdpi=72"], input=source,
                              capture_output=True, check=True)
        path.write_bytes(done.stdout)


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
