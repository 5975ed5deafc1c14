"""The import graph of a package tree, read from the source with :mod:`ast`.

Every ``import`` counts — at module level, inside functions, under ``if TYPE_CHECKING:`` — because each is a
dependency a reader has to follow. ``from package import name`` counts as an import of ``package.name`` when
that is a module of the tree, else of ``package``. Importing a module does not count as importing its parent
packages (Python runs their ``__init__`` first, but that is not a dependency the code states).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ImportGraph", "cycles", "import_graph"]


@dataclass(frozen=True)
class ImportGraph:
    """The modules of a tree (dotted name -> file) and, for each, the modules of the tree it imports."""

    files: dict[str, Path]
    edges: dict[str, set[str]]

    def external(self, module: str) -> set[str]:
        """The top-level names of what ``module`` imports from outside the tree (``sqlalchemy``, ...)."""
        return _external_imports(self.files[module])


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(path: Path, module: str) -> Iterator[tuple[str, str | None]]:
    """(module, imported name or None) for each import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield base, alias.name


def _external_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def import_graph(root: Path) -> ImportGraph:
    """The import graph of the package at ``root`` (a directory with an ``__init__.py``)."""
    files = {_module_name(root, path): path for path in sorted(root.rglob("*.py"))}
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for base, imported in _imported_names(path, name):
            target = f"{base}.{imported}" if imported and f"{base}.{imported}" in files else base
            while target and target not in files:  # ``import a.b.c`` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return ImportGraph(files, edges)


def cycles(graph: ImportGraph) -> list[list[str]]:
    """Every strongly connected group of more than one module (each is at least one import circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's algorithm
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph.edges):
        if node not in index:
            visit(node)
    return found
