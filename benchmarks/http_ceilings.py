"""The HTTP ceilings of ``bench_http``: bare FastAPI apps that uvicorn runs as factories (``--factory``).

* :func:`constant_app`: ``GET /constant`` returns a constant JSON object — what FastAPI and uvicorn cost
  with nothing behind them.
* :func:`raw_sql_app`: ``POST /sessions``, ``POST /sessions/{id}/start`` and ``POST /sessions/{id}/complete``
  on the same paths, with the same request bodies and statuses as sessionflow's service, each writing by hand
  the rows sessionflow writes: the one-statement-per-step pattern of :mod:`benchmarks.raw_sql` (a
  data-modifying CTE that updates the row with a version compare-and-set and inserts the event, in
  autocommit), on one psycopg connection per server thread. The database is named by
  ``SESSIONFLOW_BENCH_HTTP_URL``. Routes are plain ``def`` (run in the threadpool), like sessionflow's.
* :func:`raw_sqlite_app`: the same routes on an SQLite file (the same URL variable), by hand on ``sqlite3``
  the way :class:`benchmarks.raw_sql.RawSqliteLifecycle` writes (WAL, ``synchronous = NORMAL``, each step one
  ``BEGIN IMMEDIATE`` transaction: the row's compare-and-set ``UPDATE`` and the event's ``INSERT`` with its
  feed position), on one connection per server thread.

What the raw app does not do is what the service adds: the lifecycle decision and its guards, the session
model in full as the answer, ``ETag``/``If-Match``, principals, the error table, metrics.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from benchmarks.environment import conninfo
from benchmarks.raw_sql import (
    RawPostgresLifecycle,
    RawSqliteLifecycle,
    _created_payload,
    _now_ms,
    _session_values,
)
from benchmarks.workload import TTL

__all__ = ["URL_ENV", "constant_app", "raw_sql_app", "raw_sqlite_app"]

#: The database of :func:`raw_sql_app` (a SQLAlchemy URL, schema created by sessionflow's migrations).
URL_ENV = "SESSIONFLOW_BENCH_HTTP_URL"
_TTL_MS = int(TTL.total_seconds() * 1000)


def constant_app() -> FastAPI:
    """``GET /constant`` → ``{"status": "ok"}``."""
    app = FastAPI()

    @app.get("/constant")
    async def constant() -> dict[str, str]:
        return {"status": "ok"}

    return app


class CreateBody(BaseModel):
    user_id: str
    workspace_id: str | None = None
    module_name: str | None = None
    metadata: dict[str, Any] = {}
    ttl_seconds: float | None = None
    performer_id: str


class PerformerBody(BaseModel):
    performer_id: str


def raw_sql_app() -> FastAPI:
    """The three lifecycle routes written directly on psycopg (see the module's docstring)."""
    info = conninfo(os.environ[URL_ENV])
    local = threading.local()

    def statements() -> RawPostgresLifecycle:
        raw: RawPostgresLifecycle | None = getattr(local, "raw", None)
        if raw is None:
            raw = local.raw = RawPostgresLifecycle(info, "statement")
        return raw

    app = FastAPI()

    @app.post("/sessions", status_code=201)
    def create(body: CreateBody) -> JSONResponse:
        raw = statements()
        sid = uuid.uuid4()
        now = _now_ms()
        expires = now + _TTL_MS
        user = body.user_id
        written = raw.conn.execute(raw.create_statement, (
            *_session_values(sid, user, now, expires), uuid.uuid4(), 1, "created", None, "pending",
            body.performer_id, now, _created_payload(user, expires))).rowcount
        if written != 1:
            raise HTTPException(409)
        return JSONResponse({"id": str(sid), "status": "pending", "version": 1}, status_code=201)

    def step(sid: uuid.UUID, statement: str, params: tuple[Any, ...]) -> None:
        if statements().conn.execute(statement, params).rowcount != 1:
            raise HTTPException(409, f"{sid} changed meanwhile")

    @app.post("/sessions/{session_id}/start")
    def start(session_id: uuid.UUID, body: PerformerBody) -> JSONResponse:
        now = _now_ms()
        step(session_id, statements().start_statement, (
            "in_progress", 2, now, session_id, 1, uuid.uuid4(), 2, "started", "pending", "in_progress",
            body.performer_id, now, "{}"))
        return JSONResponse({"id": str(session_id), "status": "in_progress", "version": 2})

    @app.post("/sessions/{session_id}/complete")
    def complete(session_id: uuid.UUID, body: PerformerBody) -> JSONResponse:
        now = _now_ms()
        who = body.performer_id
        step(session_id, statements().complete_statement, (
            "completed", 3, now, now, who, session_id, 2, uuid.uuid4(), 3, "completed", "in_progress",
            "completed", who, now, "{}"))
        return JSONResponse({"id": str(session_id), "status": "completed", "version": 3})

    return app


def raw_sqlite_app() -> FastAPI:
    """The three lifecycle routes written directly on ``sqlite3`` (see the module's docstring)."""
    path = os.environ[URL_ENV].removeprefix("sqlite:///")
    local = threading.local()

    def lifecycle() -> RawSqliteLifecycle:
        raw: RawSqliteLifecycle | None = getattr(local, "raw", None)
        if raw is None:
            raw = local.raw = RawSqliteLifecycle(path, "NORMAL")
        return raw

    app = FastAPI()

    def write(*statements: tuple[str, tuple[Any, ...]]) -> None:
        raw = lifecycle()
        execute = raw.conn.execute
        execute("BEGIN IMMEDIATE")
        try:
            changed = [execute(sql, params).rowcount for sql, params in statements]
            if changed[0] != 1:
                raise HTTPException(409, "changed meanwhile")
            execute("COMMIT")
        except BaseException:
            if raw.conn.in_transaction:
                execute("ROLLBACK")
            raise

    @app.post("/sessions", status_code=201)
    def create(body: CreateBody) -> JSONResponse:
        raw = lifecycle()
        sid = uuid.uuid4()
        now = _now_ms()
        expires = now + _TTL_MS
        user = body.user_id
        write((raw.insert_session, _session_values(sid.hex, user, now, expires)),
              (raw.insert_event, (uuid.uuid4().hex, sid.hex, 1, "created", None, "pending", body.performer_id,
                                  now, _created_payload(user, expires))))
        return JSONResponse({"id": str(sid), "status": "pending", "version": 1}, status_code=201)

    @app.post("/sessions/{session_id}/start")
    def start(session_id: uuid.UUID, body: PerformerBody) -> JSONResponse:
        raw = lifecycle()
        now = _now_ms()
        key = session_id.hex
        write((raw.start_row, ("in_progress", 2, now, key, 1)),
              (raw.insert_event, (uuid.uuid4().hex, key, 2, "started", "pending", "in_progress", body.performer_id,
                                  now, "{}")))
        return JSONResponse({"id": str(session_id), "status": "in_progress", "version": 2})

    @app.post("/sessions/{session_id}/complete")
    def complete(session_id: uuid.UUID, body: PerformerBody) -> JSONResponse:
        raw = lifecycle()
        now = _now_ms()
        who = body.performer_id
        key = session_id.hex
        write((raw.complete_row, ("completed", 3, now, now, who, key, 2)),
              (raw.insert_event, (uuid.uuid4().hex, key, 3, "completed", "in_progress", "completed", who, now,
                                  "{}")))
        return JSONResponse({"id": str(session_id), "status": "completed", "version": 3})

    return app
