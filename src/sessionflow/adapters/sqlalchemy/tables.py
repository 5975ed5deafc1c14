"""The SQL schema: the append-only ``session_events`` table and the ``sessions`` projection.

Timestamps are stored as integer milliseconds since the Unix epoch (UTC): exact, identical on SQLite and
PostgreSQL, cheap to compare and index. The projection is derived from the events and can be dropped and
rebuilt from them at any time, so no foreign key ties the two tables.

``session_events.position`` is the event's place in the global feed: an integer increasing in commit order
across all sessions, assigned by the database as the event is inserted (on PostgreSQL by a trigger that
serializes the assignment until commit, on SQLite by the insert itself under the database's write lock; see
``postgres.py`` and ``sqlite.py``). ``sessionflow_consumers`` keeps each named feed consumer's position.
``session_events.traceparent`` / ``tracestate`` hold the event's ``trace_context`` (NULL: none).

``due_at`` is the deadline of a live (pending or in-progress, not deleted) session and NULL otherwise; its
index makes "overdue and not terminal" a range scan for the sweeper.

``idempotency_keys`` keeps the idempotency key of each keyed write (``Change.idempotency``), written in the
write's own transaction: one row per ``(scope, key)``, naming the session and the version the write left, kept
until ``expires_at`` (then replaced by the next write with that key, or dropped by ``drop_expired_keys``: the
index on ``expires_at``); a purge removes the keys of the sessions it removes (a scan of this table, which holds
at most one window of keyed writes: no index on ``session_id``, which every keyed write would pay for).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from sessionflow.adapters.storage_format import from_millis, to_millis

__all__ = ["NAMING_CONVENTION", "consumers", "from_millis", "idempotency_keys", "metadata", "session_events",
           "sessions", "to_millis"]

#: Names for every constraint and index, so Alembic can compare and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

class JsonDocument(TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL; the PostgreSQL dialect is imported only there (a command on SQLite
    does not pay for it)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


_Json = JsonDocument()

session_events = Table(
    "session_events",
    metadata,
    Column("record_id", Uuid(as_uuid=True), primary_key=True),
    Column("session_id", Uuid(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event", String(32), nullable=False),
    Column("source_state", String(64), nullable=True),
    Column("target_state", String(64), nullable=False),
    Column("performer_id", String(256), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("payload", _Json, nullable=False),
    # The place in the global feed (assigned by the database; NULL only while an old row is being migrated).
    Column("position", BigInteger, nullable=True),
    # The W3C Trace Context of the span the event was written in (NULL: none; every event of before 0009).
    Column("traceparent", String(55), nullable=True),
    Column("tracestate", String(512), nullable=True),
    UniqueConstraint("session_id", "version"),
    Index(None, "position", unique=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid(as_uuid=True), primary_key=True),
    Column("status", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("user_id", String(256), nullable=True),
    Column("workspace_id", String(256), nullable=True),
    Column("module_name", String(256), nullable=True),
    Column("total_files", Integer, nullable=False),
    Column("processed_files", Integer, nullable=False),
    Column("failed_files", Integer, nullable=False),
    Column("current_file", Text, nullable=True),
    Column("ttl_seconds", Float, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("max_expires_at", BigInteger, nullable=True),
    Column("closed_at", BigInteger, nullable=True),
    Column("closed_by", String(256), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    Column("due_at", BigInteger, nullable=True),
    # file_paths, file_results, notes and metadata, as one JSON document.
    Column("data", _Json, nullable=False),
    # The lifecycle definition the session runs under (see sessionflow.domain.definitions).
    Column("lifecycle", String(128), nullable=False, server_default="session"),
    Column("lifecycle_version", Integer, nullable=False, server_default="1"),
    # The list order: the feed position of the session's ``created`` event (commit order). Set by the stores'
    # inserts as they write the row; revision 0007's trigger sets it for any other writer that leaves it unset.
    Column("created_position", BigInteger, nullable=True),
    Index(None, "due_at"),
    Index(None, "created_position"),
    # One index per list filter, each in list order, so a filtered page is a short ordered index scan (in
    # either direction); a user's sessions of one status (the "my sessions" page) have their own (listing.py).
    Index(None, "status", "created_position"),
    Index(None, "user_id", "created_position"),
    Index(None, "workspace_id", "created_position"),
    Index(None, "lifecycle", "created_position"),
    Index(None, "user_id", "status", "created_position"),
)

consumers = Table(
    "sessionflow_consumers",
    metadata,
    Column("name", String(256), primary_key=True),
    # The position of the last event the consumer has handled (0: none yet).
    Column("position", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    # The SHA-256 (hex) of the request the key was given with.
    Column("fingerprint", Text, nullable=False),
    # The session the write wrote, and the version it left.
    Column("session_id", Uuid(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "expires_at"),
    # On SQLite the rows live in the primary key's b-tree (no rowid table beside it): a keyed write then adds one
    # b-tree and its index on expires_at to what it writes, not three.
    sqlite_with_rowid=False,
)
