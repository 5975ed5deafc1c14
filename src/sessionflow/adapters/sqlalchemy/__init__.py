"""The durable event store on SQLAlchemy: SQLite and PostgreSQL.

``SqlAlchemyEventStore(engine)`` builds the recorder of the engine's dialect (see ``persistence.py``):
:class:`SqliteEventStore` (``sqlite.py``) or :class:`PostgresEventStore` (``postgres.py``); importing this
package registers both.
"""

from sessionflow.adapters.sqlalchemy.persistence import SqlAlchemyEventStore
from sessionflow.adapters.sqlalchemy.postgres import PostgresEventStore
from sessionflow.adapters.sqlalchemy.sqlite import SqliteEventStore, install_sqlite_pragmas

__all__ = ["PostgresEventStore", "SqlAlchemyEventStore", "SqliteEventStore", "install_sqlite_pragmas"]
