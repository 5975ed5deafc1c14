"""Sweep of 100,000 overdue sessions in a table of 500,000 (quick mode: 2,000 of 10,000), SQLite and PostgreSQL.

Each expiry is one ``expired`` event row plus an update of the session's projection row, 1,000 per
transaction. The table (see `benchmarks/population.py`) holds 100,000 overdue live sessions, due one
millisecond apart in random id order, 100,000 live sessions due in years and 300,000 closed ones; each
contender starts every round from an identical copy of it (SQLite: a copy of the file; PostgreSQL: a database
created from a template database).

* sessionflow: ``manager.expire_sessions(now=..., batch_size=1000)`` on a fresh manager (an empty read
  cache) — claims (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), decodes each
  row into a ``Session``, decides with the compiled lifecycle (the guard checks the deadline), builds the
  event and the new state, and writes them with a version compare-and-set: on SQLite one ``executemany`` of
  updates and one of events per batch (the claim reads the batch as one JSON value), on PostgreSQL one
  statement over arrays (updates, then the events of the rows it updated) per chunk of 200 sessions, each
  sent in pipeline mode as soon as it is decided, and the ``COMMIT`` behind the last;
* ceiling: the raw driver (``sqlite3`` / psycopg 3) doing exactly that work by hand: claim 1,000 overdue
  rows ordered by deadline (``SKIP LOCKED`` on PostgreSQL), insert one event and update the row each
  (``executemany``, version compare-and-set checked), commit; no decision;
* the same raw loop deciding each row with a python-statemachine ``SessionLifecycle`` instance built at the
  row's state (``send("expire", ...)``, the same guard);
* APScheduler 3 with one date job per session: 100,000 jobs (``misfire_grace_time=None``, the default
  thread pool) falling due at once in a started scheduler; the time from their due instant until all have
  run. Each job only counts: no database work, so this is a lower bound for a job-per-session design.

A sweep "as of" the n-th deadline finds exactly n sessions due, so every round expires the same n sessions.
Checked in the run: each contender expired exactly n sessions and none is left due; a session expired by
the raw loop has the same row and events as the one sessionflow expired (ids and timestamps aside) and
reads back through sessionflow equal to the fold of its history.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.checks import Fetch, same_rows, sqlite_fetch
from benchmarks.environment import conninfo, load_average
from benchmarks.framework import (
    Benchmark,
    Contender,
    Context,
    Measurement,
    Section,
    Target,
    measure,
    profile_contender,
)
from benchmarks.population import Population, load_postgres, population
from benchmarks.raw_sql import NEXT_POSITION
from sessionflow import SessionLifecycle, SessionManager, SessionStatus, replay

__all__ = ["BENCHMARK", "RawSweep", "apscheduler_burst"]

_BATCH = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INSERT_EVENT = ("INSERT INTO session_events (record_id, session_id, version, event, source_state, target_state, "
                 "performer_id, timestamp, payload) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {1})")
_UPDATE_ROW = ("UPDATE sessions SET status = {0}, version = {0}, updated_at = {0}, closed_at = {0}, "
               "closed_by = {0}, due_at = NULL WHERE id = {0} AND version = {0}")
_CLAIM = ("SELECT id, status, version, expires_at FROM sessions WHERE due_at <= {0} ORDER BY due_at "
          "LIMIT {0}")


def _statemachine_target(status: str, expires_ms: int, now: datetime) -> str:
    """The python-statemachine way: a machine at the row's state, sent ``expire`` with the same guard."""
    machine = SessionLifecycle(start_value=status)
    machine.send("expire", session=SimpleNamespace(expires_at=_EPOCH + timedelta(milliseconds=expires_ms)),
                 now=now)
    return str(machine.current_state_value)


class RawSweep:
    """The sweep written directly on a driver connection: ``sqlite3`` or psycopg 3 (``SKIP LOCKED``)."""

    def __init__(self, connect: Callable[[], Any], dialect: str, *, statemachine: bool = False) -> None:
        self.connect = connect
        self.dialect = dialect
        self.statemachine = statemachine
        mark, json_mark = ("?", "?") if dialect == "sqlite" else ("%s", "%s::jsonb")
        self.insert_event = _INSERT_EVENT.format(mark, json_mark)
        if dialect == "sqlite":  # the feed position, as sessionflow computes it (PostgreSQL: the table's trigger)
            self.insert_event = self.insert_event.replace(
                ", payload) VALUES (", ", payload, position) VALUES (").replace("?)", f"?, {NEXT_POSITION})")
        self.update_row = _UPDATE_ROW.format(mark)
        self.claim = _CLAIM.format(mark) + (" FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else "")

    def run(self, now: datetime) -> int:
        now_ms = (now - _EPOCH) // timedelta(milliseconds=1)
        sqlite = self.dialect == "sqlite"
        conn = self.connect()
        total = 0
        try:
            while True:
                if sqlite:
                    conn.execute("BEGIN IMMEDIATE")
                rows = conn.execute(self.claim, (now_ms, _BATCH)).fetchall()
                events = []
                updates = []
                for sid, status, version, expires in rows:
                    target = _statemachine_target(status, expires, now) if self.statemachine else "expired"
                    record = uuid.uuid4().hex if sqlite else uuid.uuid4()
                    events.append((record, sid, version + 1, "expired", status, target, "system", now_ms, "{}"))
                    updates.append((target, version + 1, now_ms, now_ms, "system", sid, version))
                cursor = conn.cursor()
                try:
                    cursor.executemany(self.insert_event, events)
                    cursor.executemany(self.update_row, updates)
                    if cursor.rowcount != len(updates):
                        raise AssertionError(f"compare-and-set matched {cursor.rowcount} of {len(updates)} rows")
                finally:
                    cursor.close()
                if sqlite:
                    conn.execute("COMMIT")
                else:
                    conn.commit()
                total += len(rows)
                if len(rows) < _BATCH:
                    return total
        finally:
            conn.close()


def apscheduler_burst(n: int) -> tuple[Callable[[], float], Callable[[], None]]:
    """A started, paused APScheduler with ``n`` date jobs due at one instant; returns ``(fire, close)``:
    ``fire()`` resumes it and returns the seconds until every job has run, ``close()`` shuts it down."""
    from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

    ran = itertools.count(1)
    done = threading.Event()

    def job() -> None:
        if next(ran) == n:
            done.set()

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    due = datetime.now(UTC)
    for _ in range(n):
        scheduler.add_job(job, "date", run_date=due, misfire_grace_time=None)

    def fire() -> float:
        started = time.perf_counter()
        scheduler.resume()
        if not done.wait(timeout=600):
            raise AssertionError("APScheduler did not run every job within 600 s")
        return time.perf_counter() - started

    def close() -> None:
        scheduler.shutdown(wait=True)

    return fire, close


# ---------------------------------------------------------------------------------------------- databases


class _Copies:
    """Fresh copies of the population for each contender and round, and their connections."""

    def __init__(self, ctx: Context, pop: Population, dialect: str, template: str | None = None) -> None:
        self.ctx = ctx
        self.pop = pop
        self.dialect = dialect
        self.template = template  # PostgreSQL: the template database's name
        self.current: dict[str, str] = {}  # contender key -> URL of its current copy

    def fresh(self, key: str) -> str:
        """A new copy for ``key`` (the previous one is dropped); its SQLAlchemy URL."""
        if self.dialect == "sqlite":
            path = self.ctx.workdir / f"sweep-{key}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self.pop.path, path)
            url = f"sqlite:///{path}"
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            server = make_url(self.ctx.postgres.server_url())
            name = f"{self.template}_{key}"
            with psycopg.connect(**conninfo(server), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            url = server.set(database=name).render_as_string(hide_password=False)
        self.current[key] = url
        return url

    def connect(self, key: str) -> Any:
        url = self.current[key]
        if self.dialect == "sqlite":
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 30000")
            return conn
        import psycopg

        return psycopg.connect(**conninfo(url))

    def fetch(self, key: str, stack: contextlib.ExitStack) -> Fetch:
        conn = self.connect(key)
        stack.callback(conn.close)
        if self.dialect == "sqlite":
            return sqlite_fetch(conn)
        from psycopg.rows import dict_row

        conn.autocommit = True
        conn.row_factory = dict_row

        def fetch(sql: str, value: Any) -> list[dict[str, Any]]:
            return list(conn.execute(sql, (value,)).fetchall())

        return fetch

    def drop_all(self) -> None:
        if self.dialect != "postgresql":
            return
        import psycopg
        from sqlalchemy.engine import make_url

        server = make_url(self.ctx.postgres.server_url())
        with psycopg.connect(**conninfo(server), autocommit=True) as conn:
            for url in self.current.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@contextlib.contextmanager
def _postgres_template(ctx: Context, pop: Population) -> Iterator[str]:
    """A template database on the server holding the population (dropped on exit); its name."""
    from sqlalchemy.engine import make_url

    with ctx.postgres.fresh_database("sfbench_sweep") as url:
        SessionManager.open(url).close()  # the schema, by the migrations
        load_postgres(pop, conninfo(url), ctx.log)
        yield str(make_url(url).database)


# ---------------------------------------------------------------------------------------------- checks


def _check(copies: _Copies, ours_key: str, raw_key: str, n: int, now: datetime) -> list[str]:
    """The contenders' final copies: ``n`` expired each, none left due, the same rows for one session."""
    problems: list[str] = []
    now_ms = (now - _EPOCH) // timedelta(milliseconds=1)
    with contextlib.ExitStack() as stack:
        fetches = {key: copies.fetch(key, stack) for key in (ours_key, raw_key)}
        for key, fetch in fetches.items():
            (expired,) = fetch("SELECT count(*) AS n FROM session_events WHERE event = %s", "expired")[0].values()
            (due,) = fetch("SELECT count(*) AS n FROM sessions WHERE due_at <= %s", now_ms)[0].values()
            if (expired, due) != (n, 0):
                problems.append(f"{key}: {expired} expired events and {due} sessions still due (expected {n}, 0)")
        sample = fetches[ours_key]("SELECT session_id FROM session_events WHERE event = %s LIMIT 1", "expired")
        if not sample:
            return [*problems, "no expired session to compare"]
        sid = sample[0]["session_id"]
        problems += same_rows((fetches[ours_key], sid), (fetches[raw_key], sid))
    with SessionManager.open(copies.current[raw_key], migrate=False, cache_size=0) as manager:
        session = manager.store.get(uuid.UUID(str(sid)))
        if session is None or session.status is not SessionStatus.EXPIRED or session.closed_by != "system":
            problems.append(f"raw-expired session {sid} reads back as {session!r}")
        elif replay(manager.history(session.id)) != session:
            problems.append(f"raw-expired session {sid}: the projection differs from the fold of its events")
    return problems


# ---------------------------------------------------------------------------------------------- the run


def _contenders(ctx: Context, copies: _Copies, pop: Population, label: str,
                manager_options: dict[str, Any]) -> tuple[list[Contender], dict[str, str]]:
    managers: dict[str, SessionManager] = {}

    def close_manager() -> None:
        manager = managers.pop("ours", None)
        if manager is not None:
            manager.close()

    def prepare_ours(n: int) -> None:
        close_manager()
        managers["ours"] = SessionManager.open(copies.fresh("ours"), migrate=False, **manager_options)

    def run_ours(n: int) -> None:
        expired = managers["ours"].expire_sessions(now=pop.due_at(n), batch_size=_BATCH)
        close_manager()
        if expired != n:
            raise AssertionError(f"sessionflow expired {expired} sessions, expected {n}")

    def raw_runner(key: str, statemachine: bool) -> tuple[Callable[[int], object], Callable[[int], object]]:
        sweep = RawSweep(lambda: copies.connect(key), copies.dialect, statemachine=statemachine)

        def run(n: int) -> None:
            expired = sweep.run(pop.due_at(n))
            if expired != n:
                raise AssertionError(f"{key} expired {expired} sessions, expected {n}")

        return run, lambda n: copies.fresh(key)

    raw_run, raw_prepare = raw_runner("raw", False)
    sm_run, sm_prepare = raw_runner("statemachine", True)
    labels = {
        "ours": f"sessionflow expire_sessions, {label}",
        "raw": f"raw {'sqlite3' if copies.dialect == 'sqlite' else 'psycopg'} loop, {label}",
        "statemachine": f"raw loop + python-statemachine per row, {label}",
    }
    contenders = [
        Contender(labels["ours"], "session", run_ours, prepare=prepare_ours, profile=True),
        Contender(labels["raw"], "session", raw_run, prepare=raw_prepare),
        Contender(labels["statemachine"], "session", sm_run, prepare=sm_prepare),
    ]
    return contenders, labels


def _apscheduler_contender() -> Contender:
    state: dict[str, Any] = {}

    def prepare(n: int) -> None:
        state["fire"], state["close"] = apscheduler_burst(n)

    def run(n: int) -> None:
        fire, close = state.pop("fire"), state.pop("close")
        fire()
        close()  # and nothing of it stays alive during the other contenders' rounds

    return Contender("APScheduler, one date job per session, all due at once", "session", run, prepare=prepare)


def run(ctx: Context) -> Section:
    section = Section(name="sweep", title="Sweep of 100k overdue sessions in 500k" if not ctx.quick else
                      "Sweep of overdue sessions (quick size)", description=__doc__ or "")
    overdue = ctx.scale(100_000, 2_000)
    live = ctx.scale(100_000, 2_000)
    closed = ctx.scale(300_000, 6_000)
    rounds = ctx.scale(2, 1)
    pop = population(overdue, live, closed, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    section.notes.append(f"Table: {pop.size:,} sessions, {overdue:,} of them overdue; "
                         f"{'built' if pop.built_seconds else 'cached'} "
                         + (f"in {pop.built_seconds:.0f} s " if pop.built_seconds else "")
                         + "by cloning rows sessionflow wrote, then checked by reading a sample back.")
    aps = _apscheduler_contender()
    totals: dict[str, float] = {}
    loads: list[float] = [load_average()]
    results: dict[str, Measurement] = {}
    for dialect, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        with contextlib.ExitStack() as stack:
            if dialect == "sqlite":
                copies = _Copies(ctx, pop, dialect)
                options: dict[str, Any] = {}
            else:
                template = stack.enter_context(_postgres_template(ctx, pop))
                copies = _Copies(ctx, pop, dialect, template)
                stack.callback(copies.drop_all)
                options = {}
            contenders, labels = _contenders(ctx, copies, pop, label, options)
            if dialect == "sqlite":
                contenders.append(aps)  # measured once, interleaved with the SQLite round
            warm = min(500, overdue)
            ctx.log(f"  {label}: warm-up ({warm} sessions each), then {rounds} round(s) of {overdue:,}")
            for contender in contenders:
                if contender.prepare is not None:
                    contender.prepare(warm)
                contender.run(warm)
            measured = measure(contenders, overdue, rounds, warmup=0, log=ctx.log, collect=not ctx.quick)
            loads.append(load_average())
            problems = _check(copies, "ours", "raw", overdue, pop.due_at(overdue))
            if problems:
                raise AssertionError(f"{label}: " + "; ".join(problems))
            if ctx.profile:
                section.profiles.append(profile_contender(contenders[0], overdue))
            results.update(measured)
            ours = section.add(measured[labels["ours"]], "throughput")
            raw = section.add(measured[labels["raw"]], "throughput")
            sm = section.add(measured[labels["statemachine"]], "throughput")
            # As times per session: the ratio reads "sessionflow takes 1.3x the raw loop's time".
            section.compare(ours, raw, "latency", Target("<=", 1.5, "issue 4"))
            section.compare(ours, sm, "throughput")
            for key, m in (("ours", ours), ("raw", raw), ("statemachine", sm)):
                totals[f"{key}-{dialect}"] = m.median * overdue
    aps_m = section.add(results[aps.label], "throughput")
    for label in ("SQLite", "PostgreSQL"):
        section.compare(results[f"sessionflow expire_sessions, {label}"], aps_m, "throughput")
    rows = ["| Contender | SQLite | PostgreSQL |", "|---|---|---|"]
    for key, name in (("ours", "sessionflow `expire_sessions`"), ("raw", "raw driver loop"),
                      ("statemachine", "raw loop + python-statemachine per row")):
        rows.append(f"| {name} | {totals[f'{key}-sqlite']:.1f} s | {totals[f'{key}-postgresql']:.1f} s |")
    aps_total = aps_m.median * overdue
    rows.append(f"| APScheduler, {overdue:,} date jobs due at once (no database work) | {aps_total:.1f} s | |")
    section.blocks.append(f"Time to expire all {overdue:,} (median of the rounds):\n\n" + "\n".join(rows))
    section.figures["sweep_seconds"] = {**totals, "apscheduler": aps_total}
    section.notes.append("The target (issue 4): sessionflow's sweep takes at most 1.5 times the raw loop's time on "
                         "the same database; that ratio is shown as time per session (ours / the loop's).")
    section.notes.append("Load average (1 min) before / after each database's rounds: "
                         + " / ".join(f"{x:.2f}" for x in loads))
    section.notes.append(f"PostgreSQL server: {ctx.postgres.origin}.")
    return section


BENCHMARK = Benchmark(name="sweep", title="Sweep of 100k overdue sessions in 500k", run=run, order=60,
                      needs_postgres=True,
                      summary="expire_sessions vs a raw driver loop, python-statemachine per row and APScheduler "
                              "jobs, SQLite and PostgreSQL")
