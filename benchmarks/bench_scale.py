"""Scale: the cost of an operation does not grow with the data (SQLite and PostgreSQL).

Three views, each against its small case measured in the same run (the reference):

1. **A long history.** ``get`` (a manager without read cache), an append (``touch``: one ``touched`` event
   and the deadline moved) and a transition (``start``) on sessions whose history holds 1 event (just
   created) against sessions holding 10,000 events (quick: 200). One long session is written through
   sessionflow itself (``create``, then ``touch`` 9,999 times); the others are copies of it made in the
   database (``INSERT … SELECT`` of its row and its events under a new session id, new event ids and new feed
   positions), so every long history is exactly what sessionflow wrote. After the rounds ``verify`` folds
   every history of the database and must find no difference from the projection. Each short-session round
   gets freshly created sessions (one event each); the ``start`` rounds use each session once.
2. **The sweep with a large backlog.** ``expire_sessions`` (batches of 1,000) on a table where 100,000
   sessions are overdue against one where 1,000,000 are (quick: 1,000 and 10,000); the populations of
   `benchmarks/population.py` (cached). PostgreSQL sweeps the whole backlog; SQLite, slower per session,
   sweeps the first 100,000 of the 1,000,000 (as of the 100,000th deadline: every other session of the table
   is overdue too, just later), which keeps the run within its time.
3. **The size on disk.** Bytes per session and per event for populations of 10,000 and 100,000 closed sessions
   (quick: 500 and 2,000), each with three events (``created``, ``started``, then ``completed`` or ``failed``):
   SQLite pages of each table and its indexes (``dbstat``, after a WAL checkpoint; the whole file in a
   note), PostgreSQL ``pg_total_relation_size`` of each table (heap, indexes, TOAST) after ``VACUUM ANALYZE``.

The ratios read "large / small" (a time or a size per operation): 1 means the cost does not grow; the target
is ≤ 1.5.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

from benchmarks.environment import conninfo, load_average
from benchmarks.framework import Benchmark, Contender, Context, Measurement, Section, Target, format_duration
from benchmarks.population import Population, load_postgres, population
from sessionflow import SessionManager
from sessionflow.adapters.sqlalchemy.tables import session_events, sessions

__all__ = ["BENCHMARK"]

TARGET = Target("<=", 1.5, "the cost does not grow with the data")
_USER = "scale-user"
#: (Not ``created_position``: each copy gets its own list order, from its ``created`` event.)
_SESSION_COLUMNS = [c.name for c in sessions.c if c.name != "created_position"]
_EVENT_COLUMNS = [c.name for c in session_events.c if c.name not in ("record_id", "session_id", "position")]


# ---------------------------------------------------------------------------------------------- 1. history


def _long_session(manager: SessionManager, events: int) -> uuid.UUID:
    """A pending session whose history sessionflow wrote: ``created`` and ``events - 1`` ``touched``."""
    s = manager.create(user_id=_USER, workspace_id="ws-scale", module_name="scale", ttl=timedelta(hours=6),
                       metadata={"source": "benchmarks"}, performer_id=_USER)
    touch = manager.touch
    for _ in range(events - 1):
        touch(s.id, performer_id=_USER)
    return s.id


def _copy_sqlite(path: str, template: uuid.UUID, count: int) -> list[uuid.UUID]:
    """``count`` copies of ``template`` (its row and its events, new ids and feed positions), on SQLite."""
    ids = [uuid.uuid4() for _ in range(count)]
    others = [c for c in _SESSION_COLUMNS if c != "id"]
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("BEGIN IMMEDIATE")
        for sid in ids:
            conn.execute(f"INSERT INTO sessions (id, {', '.join(others)}) SELECT ?, {', '.join(others)} "
                         "FROM sessions WHERE id = ?", (sid.hex, template.hex))
            (base,) = conn.execute("SELECT coalesce(max(position), 0) FROM session_events").fetchone()
            conn.execute(f"INSERT INTO session_events (record_id, session_id, {', '.join(_EVENT_COLUMNS)}, position) "
                         f"SELECT lower(hex(randomblob(16))), ?, {', '.join(_EVENT_COLUMNS)}, ? + version "
                         "FROM session_events WHERE session_id = ? ORDER BY version", (sid.hex, base, template.hex))
        conn.execute("COMMIT")
    return ids


def _copy_postgres(url: str, template: uuid.UUID, count: int) -> list[uuid.UUID]:
    """The same on PostgreSQL (the table's trigger gives the copied events their feed positions)."""
    import psycopg

    ids = [uuid.uuid4() for _ in range(count)]
    others = [c for c in _SESSION_COLUMNS if c != "id"]
    with psycopg.connect(**conninfo(url)) as conn:
        for sid in ids:
            conn.execute(f"INSERT INTO sessions (id, {', '.join(others)}) SELECT %s, {', '.join(others)} "
                         "FROM sessions WHERE id = %s", (sid, template))
            conn.execute(f"INSERT INTO session_events (record_id, session_id, {', '.join(_EVENT_COLUMNS)}) "
                         f"SELECT gen_random_uuid(), %s, {', '.join(_EVENT_COLUMNS)} "
                         "FROM session_events WHERE session_id = %s ORDER BY version", (sid, template))
            conn.commit()
        conn.execute("ANALYZE sessions")
        conn.execute("ANALYZE session_events")
        conn.commit()
    return ids


def _history(ctx: Context, section: Section, db: str, url: str, copy: Callable[[uuid.UUID, int], list[uuid.UUID]],
             loads: list[float]) -> None:
    events = ctx.scale(10_000, 200)
    rounds = ctx.scale(5, 1)
    gets, touches, starts = ctx.scale(1000, 20), ctx.scale(200, 5), ctx.scale(10, 2)
    pool_size = max(1, starts // 4) + rounds * starts + 1
    with contextlib.ExitStack() as stack:
        manager = stack.enter_context(SessionManager.open(url))
        reader = stack.enter_context(SessionManager.open(url, migrate=False, cache_size=0))
        started = time.perf_counter()
        template = _long_session(manager, events)
        built = time.perf_counter() - started
        started = time.perf_counter()
        long_ids = [template, *copy(template, pool_size - 1)]
        copied = time.perf_counter() - started
        ctx.log(f"  {db}: a {events:,}-event history written in {built:.1f} s, "
                f"{pool_size - 1} copies in {copied:.1f} s")
        if len(reader.history(long_ids[-1])) != events or reader.get(long_ids[-1]).version != events:
            raise AssertionError(f"{db}: a copied session does not read back with {events} events")
        short_ids = [manager.create(user_id=_USER, workspace_id="ws-scale", module_name="scale",
                                    performer_id=_USER).id for _ in range(50)]
        fresh: dict[str, list[uuid.UUID]] = {}
        unused = list(long_ids[1:])

        def make_short(key: str) -> Callable[[int], None]:
            def prepare(n: int) -> None:
                fresh[key] = [manager.create(user_id=_USER, workspace_id="ws-scale", module_name="scale",
                                             performer_id=_USER).id for _ in range(n)]
            return prepare

        def take_long(n: int) -> None:
            if len(unused) < n:
                raise AssertionError(f"{db}: {len(unused)} long sessions left for {n} starts")
            fresh["start-long"] = [unused.pop() for _ in range(n)]

        def get_run(ids: list[uuid.UUID]) -> Callable[[int], None]:
            def run(n: int) -> None:
                get = reader.get
                for i in range(n):
                    get(ids[i % len(ids)])
            return run

        def touch_run(key: str | None) -> Callable[[int], None]:
            def run(n: int) -> None:
                ids = fresh[key] if key is not None else long_ids
                for i in range(n):
                    manager.touch(ids[i % len(ids)], performer_id=_USER)
            return run

        def start_run(key: str) -> Callable[[int], None]:
            def run(n: int) -> None:
                for sid in fresh[key][:n]:
                    manager.start(sid, performer_id=_USER)
            return run

        long_label = f"{events:,} events"
        groups = [
            ("get", gets, [Contender(f"{db} get, 1 event", "get", get_run(short_ids)),
                           Contender(f"{db} get, {long_label}", "get", get_run(long_ids))]),
            ("touch", touches, [Contender(f"{db} touch, 1 event", "touch", touch_run("touch-short"),
                                          prepare=make_short("touch-short")),
                                Contender(f"{db} touch, {long_label}", "touch", touch_run(None))]),
            ("start", starts, [Contender(f"{db} start, 1 event", "start", start_run("start-short"),
                                         prepare=make_short("start-short")),
                               Contender(f"{db} start, {long_label}", "start", start_run("start-long"),
                                         prepare=take_long)]),
        ]
        for what, n, contenders in groups:
            ctx.log(f"  {db} {what}: {n} x {rounds} rounds")
            results = ctx.measure(contenders, n, rounds)
            short, long = (section.add(results[c.label]) for c in contenders)
            section.compare(long, short, "latency", TARGET)
        loads.append(load_average())
        started = time.perf_counter()
        differences = reader.verify()
        if differences:
            raise AssertionError(f"{db}: verify found {len(differences)} differences, e.g. {differences[:3]}")
        section.notes.append(f"{db}: one {events:,}-event history written through sessionflow in {built:.1f} s, "
                             f"{pool_size - 1} copies of it made in the database in {copied:.1f} s; after the rounds "
                             f"`verify` folded every history ({len(long_ids) * events:,}+ events) in "
                             f"{time.perf_counter() - started:.1f} s and found no difference.")


# ---------------------------------------------------------------------------------------------- 2. sweep


@contextlib.contextmanager
def _copy_of(ctx: Context, pop: Population, dialect: str) -> Iterator[str]:
    """A fresh copy of the population (SQLite: a copy of the file; PostgreSQL: a database loaded from it)."""
    if dialect == "sqlite":
        path = ctx.workdir / f"scale-sweep-{pop.overdue}.db"
        shutil.copyfile(pop.path, path)
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                (ctx.workdir / f"{path.name}{suffix}").unlink(missing_ok=True)
        return
    with ctx.postgres.fresh_database("sfbench_scale") as url:
        SessionManager.open(url).close()  # the schema, by the migrations
        load_postgres(pop, conninfo(url), ctx.log)
        yield url


def _sweep_once(ctx: Context, pop: Population, dialect: str, count: int, label: str) -> Measurement:
    with _copy_of(ctx, pop, dialect) as url, SessionManager.open(url, migrate=False) as manager:
        ctx.log(f"    {label}: sweeping {count:,}")
        started = time.perf_counter()
        expired = manager.expire_sessions(now=pop.due_at(count), batch_size=1000)
        elapsed = time.perf_counter() - started
        if expired != count:
            raise AssertionError(f"{label}: expired {expired}, expected {count}")
    ctx.log(f"    {label}: {format_duration(elapsed / count)}/session ({elapsed:.1f} s)")
    return Measurement(label, "session", (elapsed / count,), ops_per_round=count)


def _sweeps(ctx: Context, section: Section, loads: list[float]) -> None:
    small_n, large_n = ctx.scale(100_000, 1_000), ctx.scale(1_000_000, 10_000)
    small = population(small_n, 0, 0, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    large = population(large_n, 0, 0, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    rows = ["| Database | Overdue in the table | Expired by the sweep | Time | Sessions/s |", "|---|---|---|---|---|"]
    for dialect, db in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        large_count = small_n if dialect == "sqlite" else large_n
        reference = _sweep_once(ctx, small, dialect, small_n, f"{db} sweep, {small_n:,} overdue")
        label = (f"{db} sweep, {large_n:,} overdue (the first {large_count:,})" if large_count < large_n
                 else f"{db} sweep, {large_n:,} overdue")
        subject = _sweep_once(ctx, large, dialect, large_count, label)
        loads.append(load_average())
        section.compare(section.add(subject, "throughput"), section.add(reference, "throughput"), "latency", TARGET)
        for m, table in ((reference, small_n), (subject, large_n)):
            rows.append(f"| {db} | {table:,} | {m.ops_per_round:,} | {m.median * m.ops_per_round:.1f} s | "
                        f"{m.per_second:,.0f} |")
    section.blocks.append("The sweep with a backlog (one sweep each, on a fresh copy of the population):\n\n"
                          + "\n".join(rows))


# ---------------------------------------------------------------------------------------------- 3. size


def _sqlite_sizes(path: str) -> tuple[dict[str, int], int, int]:
    """Bytes per table (its indexes included), the whole file after a checkpoint, and the event count."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owner: dict[str, str] = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (events,) = conn.execute("SELECT count(*) FROM session_events").fetchone()
    return sizes, int(pages) * int(page_size), int(events)


def _postgres_sizes(url: str) -> tuple[dict[str, int], int]:
    import psycopg

    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        sizes = {table: int(conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])  # type: ignore[index]
                 for table in ("sessions", "session_events")}
        (events,) = conn.execute("SELECT count(*) FROM session_events").fetchone()  # type: ignore[misc]
    return sizes, int(events)


def _sizes(ctx: Context, section: Section) -> None:
    counts = (ctx.scale(10_000, 500), ctx.scale(100_000, 2_000))
    pops = [population(0, 0, n, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log) for n in counts]
    rows = ["| Database | Sessions | Events | Sessions table + indexes | per session | Events table + indexes | "
            "per event | Whole database | per session |", "|---|---|---|---|---|---|---|---|---|"]
    for dialect, db in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        found: list[tuple[Measurement, Measurement]] = []
        for pop in pops:
            with _copy_of(ctx, pop, dialect) as url:
                if dialect == "sqlite":
                    tables, whole, events = _sqlite_sizes(url.removeprefix("sqlite:///"))
                else:
                    tables, events = _postgres_sizes(url)
                    whole = sum(tables.values())
            n = pop.closed
            per_session = Measurement(f"{db} bytes per session (row + indexes), {n:,} sessions", "session",
                                      (tables["sessions"] / n,), ops_per_round=n, quantity="bytes")
            per_event = Measurement(f"{db} bytes per event (row + indexes), {n:,} sessions", "event",
                                    (tables["session_events"] / events,), ops_per_round=events, quantity="bytes")
            found.append((per_session, per_event))
            rows.append(f"| {db} | {n:,} | {events:,} | {tables['sessions'] / 2**20:,.1f} MiB | "
                        f"{tables['sessions'] / n:,.0f} B | {tables['session_events'] / 2**20:,.1f} MiB | "
                        f"{tables['session_events'] / events:,.0f} B | {whole / 2**20:,.1f} MiB | "
                        f"{whole / n:,.0f} B |")
        for (small, large) in zip(found[0], found[1], strict=True):
            section.compare(section.add(large), section.add(small), "latency", TARGET)
    section.blocks.append("Size on disk of closed sessions (3 events each):\n\n" + "\n".join(rows))
    section.notes.append("Sizes: SQLite counts the pages of each table and its indexes (`dbstat`) after a WAL "
                         "checkpoint, the whole database being `page_count * page_size`; PostgreSQL counts "
                         "`pg_total_relation_size` (heap, indexes, TOAST) after `VACUUM ANALYZE`, the whole "
                         "database being the two tables.")


def run(ctx: Context) -> Section:
    section = Section(name="scale", title="Scale: a long history, a large backlog, the size on disk",
                      description=__doc__ or "")
    loads = [load_average()]
    with contextlib.ExitStack() as stack:
        path = ctx.workdir / "scale-history.db"
        _history(ctx, section, "SQLite", f"sqlite:///{path}",
                 lambda template, count: _copy_sqlite(str(path), template, count), loads)
        url = stack.enter_context(ctx.postgres.fresh_database("sfbench_scale_history"))
        _history(ctx, section, "PostgreSQL", url, lambda template, count: _copy_postgres(url, template, count), loads)
    _sweeps(ctx, section, loads)
    _sizes(ctx, section)
    section.notes.append(f"PostgreSQL server: {ctx.postgres.origin}, over loopback TCP.")
    section.notes.append("Load average (1 min) at the start and after each part: "
                         + " / ".join(f"{x:.2f}" for x in loads))
    return section


BENCHMARK = Benchmark(name="scale", title="Scale: a long history, a large backlog, the size on disk", run=run,
                      order=65, needs_postgres=True,
                      summary="get/touch/start on a 10,000-event history vs 1 event; the sweep rate with 1M "
                              "overdue vs 100k; bytes per session and per event at 100k vs 10k sessions")
