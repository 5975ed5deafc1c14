"""The architecture holds: no import circles, imports point inward, small modules, and docs/architecture.md
says what the code does."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.architecture.imports import ImportGraph, cycles, import_graph
from tests.architecture.picture import part as _part

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "sessionflow"
DOC = ROOT / "docs" / "architecture.md"
#: No module of the package is longer than this, docstring included; there is no exemption.
MAX_LINES = 500

#: For each part of the package: the parts of sessionflow it may import, and the third-party packages.
#: docs/architecture.md shows the same table.
ALLOWED: dict[str, tuple[set[str], set[str]]] = {
    "errors": (set(), set()),
    "_deprecation": (set(), set()),
    "middleware": ({"errors"}, set()),
    "domain": ({"errors"}, {"pydantic", "statemachine"}),
    "application": ({"domain", "errors"}, set()),
    "adapters": ({"application", "domain", "errors"},
                 {"sqlalchemy", "psycopg", "alembic", "apscheduler", "prometheus_client", "redis", "opentelemetry"}),
    "settings": ({"domain", "errors"}, {"pydantic", "pydantic_settings"}),
    "loader": ({"domain", "errors"}, {"pydantic", "statemachine", "yaml"}),
    "diagram": ({"domain"}, {"statemachine"}),
    "stores": ({"adapters", "application", "errors", "settings"}, {"sqlalchemy"}),
    "bootstrap": ({"adapters", "application", "diagram", "domain", "errors", "settings", "stores"}, set()),
    "aio": ({"adapters", "application", "diagram", "settings", "stores"}, set()),
    "testing": ({"application", "bootstrap", "domain"}, set()),
    "scenarios": ({"bootstrap", "domain", "errors", "loader", "testing"}, {"yaml"}),
    "pytest_plugin": ({"application", "scenarios", "testing"}, {"pytest"}),
    "testing.contract": ({"", "adapters", "domain", "testing"}, {"pytest", "statemachine"}),
    "entrypoints": ({"", "adapters", "application", "bootstrap", "diagram", "domain", "errors", "loader",
                     "scenarios", "settings", "entrypoints.http.console"},
                    {"fastapi", "starlette", "pydantic", "uvicorn", "typer", "rich", "click", "prometheus_client",
                     "sqlalchemy", "alembic"}),
    # The operator's console: the manager's public API and the HTTP service's access rules, no store, no SQL.
    "entrypoints.http.console": ({"", "diagram", "domain", "entrypoints"}, {"fastapi", "starlette", "jinja2"}),
    "__main__": ({"entrypoints"}, set()),
    "": ({"adapters", "aio", "application", "bootstrap", "domain", "errors", "settings"}, set()),
}


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return import_graph(SRC)


@pytest.mark.parametrize("root", [SRC, ROOT / "benchmarks"], ids=["src", "benchmarks"])
def test_no_import_circles(root: Path) -> None:
    assert cycles(import_graph(root)) == []


def test_the_circle_finder_finds_circles(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (package / "d.py").write_text("import pkg.a\n")
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_every_part_imports_only_what_its_layer_allows(graph: ImportGraph) -> None:
    stdlib = set(sys.stdlib_module_names)
    wrong: list[str] = []
    for module, targets in sorted(graph.edges.items()):
        part = _part(module)
        assert part in ALLOWED, f"{module}: a new part of the package: add it to ALLOWED and the docs"
        inside, outside = ALLOWED[part]
        wrong += [f"{module} -> {t}" for t in sorted(targets) if _part(t) != part and _part(t) not in inside]
        wrong += [f"{module} -> {name} (third-party)" for name in sorted(graph.external(module))
                  if name not in stdlib and name != "sessionflow" and name not in outside]
    assert wrong == []


def test_the_domain_and_the_application_import_no_infrastructure(graph: ImportGraph) -> None:
    for module in graph.files:
        if _part(module) in ("domain", "application"):
            assert not graph.external(module) & {"sqlalchemy", "apscheduler", "fastapi", "psycopg", "typer"}, module


def test_no_module_is_longer_than_the_limit() -> None:
    long = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES:
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert long == []


def test_the_architecture_document_shows_the_rules() -> None:
    """Each row of the table in docs/architecture.md lists the part's allowed imports, as ALLOWED does."""
    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([\w./]*)` \| ([^|]*) \| ([^|]*) \|", text, flags=re.MULTILINE)
    documented = {}
    for name, inside, outside in rows:
        key = "" if name == "sessionflow" else name
        documented[key] = ({"" if n == "sessionflow" else n for n in re.findall(r"`([\w.]+)`", inside)},
                           set(re.findall(r"`([\w]+)`", outside)))
    assert documented == ALLOWED
    assert (ROOT / "docs" / "architecture.svg").exists()


def test_the_picture_shows_the_imports_as_they_are() -> None:
    """docs/architecture.svg draws the transitive reduction of the imports between parts, no more, no less
    (redraw it with ``python -m tests.architecture.picture``)."""
    from tests.architecture.picture import part_edges, reduced

    svg = (ROOT / "docs" / "architecture.svg").read_text(encoding="utf-8")
    drawn = set(re.findall(r'<g id="import:([\w.]+):([\w.]+)"', svg))
    expected = {(a or "sessionflow", b or "sessionflow") for a, b in reduced(part_edges())}
    assert drawn == expected
