"""Checks that keep the comparisons honest: the raw code wrote sessionflow's rows, and they read back.

:func:`same_rows` compares a session written by sessionflow with one written by a raw driver, column by
column and event by event; only ids and timestamps may differ (and the deadline inside the ``created``
payload). :func:`reads_back` opens the database with a sessionflow manager and checks that a raw-written
session is found, completed, and equal to the fold of its history.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from sessionflow import SessionManager, SessionStatus, replay

__all__ = ["Fetch", "postgres_fetch", "raw_sqlite_problems", "reads_back", "same_rows", "sqlite_fetch"]

#: ``fetch(sql_with_one_placeholder, value) -> rows as dicts``.
Fetch = Callable[[str, Any], list[dict[str, Any]]]

# (created_position is the feed position of the session's created event: where it landed among all writes)
_VARYING_SESSION = {"id", "created_at", "updated_at", "expires_at", "max_expires_at", "closed_at", "deleted_at",
                    "due_at", "created_position"}
# (the feed position is where the event landed among all writes; both sides must have one: see same_rows)
_VARYING_EVENT = {"record_id", "session_id", "timestamp", "position"}


def postgres_fetch(url: str, stack: contextlib.ExitStack) -> Fetch:
    """A :data:`Fetch` on a psycopg connection to ``url``, closed with ``stack``."""
    import psycopg
    from psycopg.rows import dict_row

    from benchmarks.environment import conninfo

    conn = psycopg.connect(**conninfo(url), autocommit=True, row_factory=dict_row)
    stack.callback(conn.close)

    def fetch(sql: str, value: Any) -> list[dict[str, Any]]:
        return list(conn.execute(sql, (value,)).fetchall())

    return fetch


def raw_sqlite_problems(ours_path: Path, ours_id: UUID | None, raw: Any, raw_path: Path) -> list[str]:
    """How the last session the raw sqlite3 contender ``raw`` wrote (in ``raw_path``) differs from the last one
    sessionflow wrote (``ours_id`` in ``ours_path``), and whether it reads back through sessionflow."""
    assert ours_id is not None
    assert raw.last_session_id is not None
    with contextlib.closing(sqlite3.connect(ours_path)) as conn:
        problems = same_rows((sqlite_fetch(conn), ours_id.hex), (sqlite_fetch(raw.conn), raw.last_session_id))
    return problems + reads_back(f"sqlite:///{raw_path}", [raw.last_session_id])


def sqlite_fetch(conn: Any) -> Fetch:
    def fetch(sql: str, value: Any) -> list[dict[str, Any]]:
        cursor = conn.execute(sql.replace("%s", "?"), (value,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return fetch


def _json(value: Any) -> tuple[Any, str | None]:
    """(decoded value, the text as stored when it is text: key order matters there too)."""
    if isinstance(value, str | bytes):
        return json.loads(value), value if isinstance(value, str) else value.decode()
    return value, None


def _masked(row: dict[str, Any], varying: set[str]) -> dict[str, Any]:
    return {k: ("<set>" if v is not None else None) if k in varying else v for k, v in row.items()}


def _payload(value: Any) -> tuple[Any, str | None]:
    decoded, text = _json(value)
    if isinstance(decoded, dict) and "expires_at" in decoded:
        if text is not None:
            text = text.replace(json.dumps(decoded["expires_at"]), '"<deadline>"')
        decoded = {**decoded, "expires_at": "<deadline>"}
    return decoded, text


def same_rows(ours: tuple[Fetch, Any], raw: tuple[Fetch, Any]) -> list[str]:
    """Differences between the rows of a session written by sessionflow and one written by raw code.

    Each side is ``(fetch, session id as stored)``; an empty list means the rows are the same.
    """
    problems: list[str] = []
    sides = (ours, raw)
    rows = [fetch("SELECT * FROM sessions WHERE id = %s", sid) for fetch, sid in sides]
    if not all(len(r) == 1 for r in rows):
        return [f"sessions rows found: {[len(r) for r in rows]}"]
    if (rows[0][0].get("created_position") is None) != (rows[1][0].get("created_position") is None):
        problems.append(f"sessions.created_position: {rows[0][0].get('created_position')!r} vs "
                        f"{rows[1][0].get('created_position')!r}")
    a, b = (_masked(r[0], _VARYING_SESSION) for r in rows)
    a["data"], b["data"] = _json(a["data"]), _json(b["data"])
    problems += [f"sessions.{k}: {a[k]!r} != {b.get(k)!r}" for k in a if a[k] != b.get(k)]
    histories = [fetch("SELECT * FROM session_events WHERE session_id = %s ORDER BY version", sid)
                 for fetch, sid in sides]
    if len(histories[0]) != len(histories[1]):
        return [*problems, f"events: {len(histories[0])} != {len(histories[1])}"]
    for ea, eb in zip(*histories, strict=True):
        if (ea.get("position") is None) != (eb.get("position") is None):
            problems.append(f"event v{ea['version']}.position: {ea.get('position')!r} vs {eb.get('position')!r}")
        ma, mb = _masked(ea, _VARYING_EVENT), _masked(eb, _VARYING_EVENT)
        ma["payload"], mb["payload"] = _payload(ma["payload"]), _payload(mb["payload"])
        problems += [f"event v{ea['version']}.{k}: {ma[k]!r} != {mb.get(k)!r}" for k in ma if ma[k] != mb.get(k)]
    return problems


def reads_back(url: str, session_ids: Sequence[Any]) -> list[str]:
    """Problems found reading ``session_ids`` (raw-written, completed sessions) through sessionflow."""
    problems: list[str] = []
    with SessionManager.open(url, migrate=False) as manager:
        for value in session_ids:
            sid = value if isinstance(value, UUID) else UUID(str(value))
            session = manager.get(sid)
            if session.status is not SessionStatus.COMPLETED or session.version != 3:
                problems.append(f"{sid}: read back as {session.status} v{session.version}")
            if replay(manager.history(sid)) != session:
                problems.append(f"{sid}: the projection differs from the fold of its events")
    return problems
