"""The store backends under ``sessionflow/adapters/`` stand alone: none imports another (what two of them share
lives in a module of ``adapters/`` itself, e.g. ``storage_format.py``, ``watcher_thread.py``)."""

from __future__ import annotations

from pathlib import Path

from tests.architecture.imports import ImportGraph, import_graph

SRC = Path(__file__).resolve().parents[2] / "src" / "sessionflow"
ADAPTERS = "sessionflow.adapters"


def backends(root: Path) -> list[str]:
    """The backend packages of ``root``'s adapters (``sessionflow.adapters.redis``, ...)."""
    return sorted(f"{ADAPTERS}.{path.parent.name}" for path in (root / "adapters").glob("*/__init__.py"))


def crossings(graph: ImportGraph, packages: list[str]) -> list[str]:
    """Every import from a module of one of ``packages`` into another of them."""

    def owner(module: str) -> str | None:
        return next((p for p in packages if module == p or module.startswith(p + ".")), None)

    return sorted(f"{module} -> {target}" for module, targets in graph.edges.items() for target in targets
                  if owner(module) is not None and owner(target) not in (None, owner(module)))


def test_the_backends_are_the_sql_and_redis_packages() -> None:
    assert {f"{ADAPTERS}.redis", f"{ADAPTERS}.sqlalchemy"} <= set(backends(SRC))


def test_no_backend_imports_another() -> None:
    """Redis imports nothing of the SQL adapter (nor the other way round)."""
    assert crossings(import_graph(SRC), backends(SRC)) == []


def test_a_crossing_is_found(tmp_path: Path) -> None:
    root = tmp_path / "sessionflow"
    for package in ("", "adapters", "adapters/redis", "adapters/sqlalchemy"):
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "adapters" / "shared.py").write_text("")
    (root / "adapters" / "redis" / "store.py").write_text(
        "from sessionflow.adapters import shared\n"
        "def f():\n    from sessionflow.adapters.sqlalchemy.rows import _freeze\n")
    (root / "adapters" / "sqlalchemy" / "rows.py").write_text("from sessionflow.adapters.shared import x\n")
    assert crossings(import_graph(root), backends(root)) == [
        "sessionflow.adapters.redis.store -> sessionflow.adapters.sqlalchemy.rows"]
