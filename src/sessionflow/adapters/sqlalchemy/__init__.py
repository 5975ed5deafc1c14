"""The durable event store on SQLAlchemy: SQLite and PostgreSQL.

``SqlAlchemyEventStore(engine)`` builds the recorder of the engine's dialect (see ``persistence.py``):
:class:`SqliteEventStore` (``sqlite.py``) or :class:`PostgresEventStore` (``postgres.py``). Importing this package
registers the SQLite recorder; the PostgreSQL one is imported when a store is first built on a PostgreSQL
engine (or :class:`PostgresEventStore` is first named), so a program on SQLite never loads it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sessionflow.adapters.sqlalchemy.persistence import SqlAlchemyEventStore
from sessionflow.adapters.sqlalchemy.sqlite import SqliteEventStore, install_sqlite_pragmas

if TYPE_CHECKING:
    from sessionflow.adapters.sqlalchemy.postgres import PostgresEventStore

__all__ = ["PostgresEventStore", "SqlAlchemyEventStore", "SqliteEventStore", "install_sqlite_pragmas"]

#: The module declaring the recorder of each dialect that is imported on first use.
_RECORDER_MODULES = {"postgresql": "sessionflow.adapters.sqlalchemy.postgres"}


class _Recorders(dict[str, type[SqlAlchemyEventStore]]):
    """The recorders by dialect name (``SqlAlchemyEventStore._recorders``): looking up a dialect whose recorder
    is not registered yet imports its module first (which registers it)."""

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self and name in _RECORDER_MODULES:
            import_module(_RECORDER_MODULES[name])
        return super().get(name, default)


if not isinstance(SqlAlchemyEventStore._recorders, _Recorders):
    SqlAlchemyEventStore._recorders = _Recorders(SqlAlchemyEventStore._recorders)


def __getattr__(name: str) -> Any:
    if name == "PostgresEventStore":
        return import_module(_RECORDER_MODULES["postgresql"]).PostgresEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
