"""The list query: the statement of :meth:`EventStore.query`, one ordered scan of one index per page.

Every list index of ``tables.py`` ends with the list order ``created_position`` (the feed position of each
session's ``created`` event), read forwards (oldest first) or backwards (newest first). A page reads the index
of the most selective filter given (:func:`_driving_index`), named on SQLite (``INDEXED BY``: without
``ANALYZE`` statistics its planner may otherwise take an index that finds the rows only after a long scan);
the other filters, and the creation range, are checked on the rows read, and the cursor (the position of its
anchor session) bounds the scan. Each shape of query (which filters are given) is built once, its values bound
per call. :func:`counts_statement` counts what a list's filters match, per status, on the same index.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, TableClause, bindparam, column, false, func, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from sessionflow.adapters.sqlalchemy.tables import sessions, to_millis
from sessionflow.application.ports import Query

__all__ = ["counts_statement", "deadlines_statement", "query_statement"]

#: Every column of a session's row, as selected (in table order; the list order ``created_position`` is no field).
SESSION_FIELDS = tuple(c for c in sessions.c if c.name != "created_position")

#: The list indexes by their columns (names from the schema's naming convention).
_LIST_INDEXES = {tuple(c.name for c in index.columns): str(index.name) for index in sessions.indexes}


class _SessionsThrough(TableClause):
    """The ``sessions`` table read through one named index: ``sessions INDEXED BY <index>`` on SQLite, plain
    ``sessions`` elsewhere (PostgreSQL chooses from its statistics). Its columns are those of ``sessions``."""

    inherit_cache = True
    _traverse_internals = [*TableClause._traverse_internals, ("index", InternalTraversal.dp_string)]  # noqa: RUF012

    def __init__(self, index: str) -> None:
        super().__init__(sessions.name, *(column(c.name, c.type) for c in sessions.c))
        self.index = index


@compiles(_SessionsThrough)
def _render_through(element: _SessionsThrough, compiler: Any, **kw: Any) -> str:
    sql: str = compiler.visit_table(element, **kw)
    if kw.get("asfrom") and compiler.dialect.name == "sqlite":
        sql += f" INDEXED BY {compiler.preparer.quote(element.index)}"
    return sql


_THROUGH = {columns: _SessionsThrough(name) for columns, name in _LIST_INDEXES.items()}


def _driving_index(query: Query, statuses: int) -> tuple[tuple[str, ...], bool]:
    """The index a list reads in order, and whether it is read once per status (several statuses, on an index
    where the status follows an equality): the most selective filter first — user, workspace, status,
    lifecycle — else creation order.

    The lifecycle comes last: most databases hold one or two lifecycles, so it hardly narrows a page. When
    another filter drives, the lifecycle is checked as ``lifecycle >= :lifecycle AND lifecycle <= :lifecycle``
    (the same rows) rather than ``=``: with a range on its first column, the ``(lifecycle, created_position)``
    index no longer yields list order, so PostgreSQL's planner cannot choose it for an ordered scan. It would
    otherwise: when (nearly) every session has the same lifecycle, that column's statistics report a perfect
    correlation with the table's order, which makes the index look cheaper to read than the status's, and
    the scan then reads and discards the rows of every other status (2.3 times the best plan at 1,000,000
    sessions). The range keeps the column's statistics, so the estimates of the rows found do not change."""
    if query.user_id is not None:
        if statuses:
            return ("user_id", "status", "created_position"), statuses > 1
        return ("user_id", "created_position"), False
    if query.workspace_id is not None:
        return ("workspace_id", "created_position"), False
    if statuses:
        return ("status", "created_position"), statuses > 1
    if query.lifecycle is not None:
        return ("lifecycle", "created_position"), False
    return ("created_position",), False


class _Part(Select[Any]):
    """One status's part of a merged list: ordered and limited on PostgreSQL (which then merges the parts in
    order, each stopping at the limit), plain on SQLite (whose merge of a compound ``SELECT`` reads each part
    in index order by itself, and would sort a limited part again)."""

    inherit_cache = True


@compiles(_Part)
def _render_part(element: _Part, compiler: Any, **kw: Any) -> str:
    if compiler.dialect.name == "sqlite":
        element = element.order_by(None).limit(None)
    sql: str = compiler.visit_select(element, **kw)
    return sql


def _filtered(query: Query, table: TableClause, statuses: int, driving: tuple[str, ...],
              part: bool = False) -> Select[Any]:
    """The list's filters on ``table``, as bound parameters (named as in :func:`_values`); ``statuses`` status
    parameters (``-1``: the one of this part); ``driving``: the columns of the index the page reads."""
    c = table.c
    columns = [c[f.name] for f in SESSION_FIELDS]
    stmt = _Part(*columns, c.created_position) if part else select(*columns)  # a part: merged in list order
    if not query.include_deleted:
        stmt = stmt.where(c.deleted_at.is_(None))
    if statuses < 0:
        stmt = stmt.where(c.status == bindparam(f"status_{-statuses - 1}"))
    elif statuses == 1:
        stmt = stmt.where(c.status == bindparam("status_0"))
    elif statuses > 1:
        stmt = stmt.where(c.status.in_([bindparam(f"status_{i}") for i in range(statuses)]))
    for name in ("user_id", "workspace_id", "module_name"):
        if getattr(query, name) is not None:
            stmt = stmt.where(c[name] == bindparam(name))
    if query.lifecycle is not None:
        if driving[0] == "lifecycle":
            stmt = stmt.where(c.lifecycle == bindparam("lifecycle"))
        else:  # the same rows, but no ordered scan of the lifecycle index can serve it (see _driving_index)
            stmt = stmt.where(c.lifecycle >= bindparam("lifecycle"), c.lifecycle <= bindparam("lifecycle"))
    if query.created_after is not None:
        stmt = stmt.where(c.created_at >= bindparam("created_after"))
    if query.created_before is not None:
        stmt = stmt.where(c.created_at < bindparam("created_before"))
    if query.after is not None:  # strictly after the anchor in list order (nothing when it does not exist)
        anchor = select(_ANCHOR.c.created_position).where(
            _ANCHOR.c.id == bindparam("after_id", type_=sessions.c.id.type)).scalar_subquery()
        stmt = stmt.where(c.created_position < anchor if query.newest_first else c.created_position > anchor)
    if query.live_after is not None:
        stmt = stmt.where(c.due_at.is_(None) | (c.due_at > bindparam("live_after")))
    return stmt


def _values(query: Query, statuses: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {f"status_{i}": status for i, status in enumerate(statuses)}
    values.update({name: getattr(query, name) for name in ("user_id", "workspace_id", "module_name", "lifecycle")
                   if getattr(query, name) is not None})
    for name in ("created_after", "created_before", "live_after"):
        value = getattr(query, name)
        if value is not None:
            values[name] = to_millis(value)
    if query.after is not None:
        values["after_id"] = query.after
    values.update(limit=query.limit, offset=query.offset, part_limit=query.limit + query.offset)
    return values


#: The shape of a list query: which filters it has, how many statuses, its driving index.
_Shape = tuple[bool, int, bool, bool, bool, bool, bool, bool, bool, bool, bool]

#: The cursor's anchor session, read by id (its own name, apart from the table the page reads).
_ANCHOR = sessions.alias("anchor")


def _order(table: Any, newest_first: bool) -> ColumnElement[Any]:
    """The list order on ``table``: its ``created_position``, newest first or oldest first."""
    position: ColumnElement[Any] = table.c.created_position
    return position.desc() if newest_first else position


@functools.lru_cache(maxsize=512)
def _template(shape: _Shape) -> Select[Any]:
    """The statement of every list query of this shape, its values left as bound parameters."""
    query = _shape_query(shape)
    statuses = shape[1]
    columns, per_status = _driving_index(query, statuses)
    table = _THROUGH[columns]
    backwards = query.newest_first
    if not per_status:
        return _filtered(query, table, statuses, columns).order_by(_order(table, backwards)).limit(
            bindparam("limit")).offset(bindparam("offset"))
    parts = (_filtered(query, table, -i - 1, columns, part=True).order_by(_order(table, backwards)).limit(
        bindparam("part_limit")).subquery() for i in range(statuses))
    merged = union_all(*(select(*part.c) for part in parts)).subquery()
    # Every column of the parts, the list order last (SQLite merges the parts in order only when the outer
    # query selects the column it orders by; session_from_row leaves it aside).
    return select(*merged.c).order_by(_order(merged, backwards)).limit(bindparam("limit")).offset(
        bindparam("offset"))


def query_statement(query: Query) -> Select[Any]:
    """The page of projection rows :meth:`EventStore.query` returns, in list order (``created_position``,
    descending when ``query.newest_first``).

    Every page is an ordered scan of one index, chosen here rather than by the database's planner (which,
    without statistics, may pick an index that finds the rows only after a long scan): the index of the most
    selective filter given, each index ending with ``created_position``, so there is never a sort. On SQLite
    the statement names it (``INDEXED BY``). Several statuses on an index that has the status after an equality
    are read as one ordered scan per status, merged (``SELECT ... FROM (... UNION ALL ...) ORDER BY``, see
    :class:`_Part`: SQLite and PostgreSQL both merge the parts, each in index order, and stop at the limit).
    The statement of each shape of query is built once (:func:`_template`), its values bound per call.
    """
    statuses = sorted(str(s) for s in query.status) if query.status is not None else []
    if query.status is not None and not statuses:
        return select(*SESSION_FIELDS).where(false())
    shape: _Shape = (query.include_deleted, len(statuses), query.user_id is not None,
                     query.workspace_id is not None, query.module_name is not None, query.lifecycle is not None,
                     query.created_after is not None, query.created_before is not None, query.after is not None,
                     query.live_after is not None, query.newest_first)
    return _template(shape).params(_values(query, statuses))


def _shape_query(shape: _Shape) -> Query:
    """A query of this shape (the values are placeholders: only which filters are given matters)."""
    (include_deleted, statuses, user, workspace, module, lifecycle, created_after, created_before, after,
     live_after, newest_first) = shape
    at = datetime(1970, 1, 1, tzinfo=UTC)
    return Query(status=frozenset(f"s{i}" for i in range(statuses)) if statuses else None,
                 user_id="u" if user else None, workspace_id="w" if workspace else None,
                 module_name="m" if module else None, lifecycle="l" if lifecycle else None,
                 include_deleted=include_deleted, created_after=at if created_after else None,
                 created_before=at if created_before else None, after=UUID(int=0) if after else None,
                 live_after=at if live_after else None, newest_first=newest_first)


def counts_statement(query: Query) -> Select[Any]:
    """How many sessions match the filters of ``query``, per status (``status, count`` rows; its page, cursor and
    order ignored): the rows of the index a list of these filters reads (:func:`_driving_index`), or of the
    whole table when no filter narrows them."""
    statuses = sorted(str(s) for s in query.status) if query.status is not None else []
    if query.status is not None and not statuses:
        return select(sessions.c.status, func.count()).where(false()).group_by(sessions.c.status)
    plain = Query(status=query.status, user_id=query.user_id, workspace_id=query.workspace_id,
                  module_name=query.module_name, lifecycle=query.lifecycle, include_deleted=query.include_deleted,
                  live_after=query.live_after, created_after=query.created_after,
                  created_before=query.created_before)
    columns, _ = _driving_index(plain, len(statuses))
    table: TableClause = sessions if columns == ("created_position",) else _THROUGH[columns]
    stmt = _filtered(plain, table, len(statuses), columns).with_only_columns(
        table.c.status, func.count()).select_from(table).group_by(table.c.status)
    return stmt.params(_values(plain, statuses))


def deadlines_statement(after: datetime, until: datetime, limit: int, user_id: str | None) -> Select[Any]:
    """Up to ``limit`` live sessions whose deadline is ``after < due_at <= until``, soonest first: a range of the
    ``due_at`` index read in its order (named on SQLite), the user checked on the rows read."""
    table = _THROUGH[("due_at",)]
    c = table.c
    stmt = select(*(c[f.name] for f in SESSION_FIELDS)).where(
        c.due_at > to_millis(after), c.due_at <= to_millis(until), c.deleted_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(c.user_id == user_id)
    return stmt.order_by(c.due_at).limit(limit)
