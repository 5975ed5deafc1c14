"""The durable lifecycle at real durability: create + start + complete per session, every commit flushed to
the disk before it returns.

The other PostgreSQL figures come from a throwaway server with ``fsync`` and ``synchronous_commit`` off, where
a commit costs a round trip and no disk flush. Here every contender runs on a second throwaway server started
for the run with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` on (PostgreSQL's defaults; see
``PostgresProvider.durable_database`` in `benchmarks/environment.py`), and SQLite runs in WAL mode with
``synchronous = FULL`` (every commit syncs the WAL), so each of the three commits of a session waits for the
disk. The work is that of the ``lifecycle-postgres`` and ``lifecycle-sqlite`` benchmarks:

* PostgreSQL, 1 thread and 8 threads, all on the durable server in the same run:

  * sessionflow: ``SessionManager.open("postgresql+psycopg://…")`` (a pool of at least as many connections
    as threads), one manager shared by the threads;
  * reference: raw psycopg 3, one connection per thread, one statement per step in autocommit (a
    data-modifying CTE writing the row and the event in one round trip: one commit, one flush per step),
    writing the same rows into the same schema (`benchmarks/raw_sql.py`);
  * peer: the ``eventsourcing`` library's PostgreSQL persistence (one application shared by the threads, its
    pool sized to the thread count), in a database of its own on the same server.

* SQLite ``FULL`` (WAL), 1 thread: sessionflow (``sqlite_synchronous="FULL"``) against raw ``sqlite3`` at the
  same level writing the same rows, each on its own file.

With several threads, commits that wait for the disk together can share one flush (PostgreSQL's WAL writer
flushes everything written up to that point), so 8 threads gain more here than on a server that does not
flush at all. Contenders run interleaved, round by round.
"""

from __future__ import annotations

import contextlib

from benchmarks.bench_lifecycle_sqlite import _synchronous_of
from benchmarks.checks import postgres_fetch, raw_sqlite_problems, reads_back, same_rows
from benchmarks.environment import conninfo, load_average
from benchmarks.framework import Benchmark, Contender, Context, Measurement, Section, Target, profile_contender
from benchmarks.peer_eventsourcing import lifecycle, postgres_env, postgres_missing, sessions_app
from benchmarks.raw_sql import RawPostgresLifecycle, RawSqliteLifecycle
from benchmarks.workload import SessionflowLifecycle, spread
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

_RAW_PG = "raw psycopg, 1 statement per step"
_PG_TARGET = Target(">=", 0.7, "issue 3's target for the best raw pattern, at real durability")
_SQLITE_TARGET = Target(">=", 0.8, "issue 3's target for FULL")


def _postgres(ctx: Context, section: Section, loads: list[float]) -> dict[int, Measurement]:
    """The PostgreSQL rounds on the durable server; sessionflow's measurement per thread count."""
    rounds = ctx.scale(7, 1)
    sizes = {1: ctx.scale(300, 6), 8: ctx.scale(1200, 16)}
    es_missing = postgres_missing()
    if es_missing is not None:
        section.notes.append(f"eventsourcing peer not run: {es_missing}")
    ours_by_threads: dict[int, Measurement] = {}
    with contextlib.ExitStack() as outer:
        url = outer.enter_context(ctx.postgres.durable_database("sfbench_durable"))
        es_url = outer.enter_context(ctx.postgres.durable_database("sfbench_durable_es"))
        ctx.log(f"  durable server: {ctx.postgres.durable_origin}")
        info = conninfo(url)
        for threads, n in sizes.items():
            suffix = f"{threads} thread" + ("s" if threads > 1 else "")
            with contextlib.ExitStack() as stack:
                manager = stack.enter_context(SessionManager.open(url, pool_size=max(5, threads), max_overflow=2))
                ours = [SessionflowLifecycle(manager) for _ in range(threads)]
                raws = [RawPostgresLifecycle(info, "statement") for _ in range(threads)]
                for raw in raws:
                    stack.callback(raw.close)
                contenders = [
                    Contender(f"sessionflow, durable PostgreSQL, {suffix}", "session", spread([o.run for o in ours]),
                              threads=threads, profile=threads == 1),
                    Contender(f"{_RAW_PG}, durable PostgreSQL, {suffix}", "session",
                              spread([r.run for r in raws]), threads=threads),
                ]
                if es_missing is None:
                    app = stack.enter_context(sessions_app(postgres_env(es_url, pool_size=max(5, threads))))
                    contenders.append(Contender(f"eventsourcing, durable PostgreSQL, {suffix}", "session",
                                                spread([lifecycle(app)] * threads), threads=threads))
                ctx.log(f"  durable PostgreSQL, {suffix}: {n} sessions x {rounds} rounds")
                results = ctx.measure(contenders, n, rounds)
                loads.append(load_average())

                fetch = postgres_fetch(url, stack)
                problems = same_rows((fetch, ours[0].last_session_id), (fetch, raws[0].last_session_id))
                problems += reads_back(url, [raws[0].last_session_id])
                if problems:
                    raise AssertionError("the raw psycopg rows differ from sessionflow's: " + "; ".join(problems))
                if ctx.profile and threads == 1:
                    section.profiles.append(profile_contender(contenders[0], n))

            subject = section.add(results[contenders[0].label], "throughput")
            reference = section.add(results[contenders[1].label], "throughput")
            section.compare(subject, reference, "throughput", _PG_TARGET)
            if es_missing is None:
                peer = section.add(results[contenders[2].label], "throughput")
                section.compare(subject, peer, "throughput")
            ours_by_threads[threads] = subject
    return ours_by_threads


def _sqlite(ctx: Context, section: Section, loads: list[float]) -> Measurement:
    rounds = ctx.scale(7, 1)
    n = ctx.scale(300, 8)
    with contextlib.ExitStack() as stack:
        ours_path = ctx.workdir / "durable-sessionflow.db"
        raw_path = ctx.workdir / "durable-raw.db"
        manager = stack.enter_context(SessionManager.open(f"sqlite:///{ours_path}", sqlite_synchronous="FULL"))
        SessionManager.open(f"sqlite:///{raw_path}").close()  # the raw contender's schema, by the migrations
        ours = SessionflowLifecycle(manager)
        raw = RawSqliteLifecycle(str(raw_path), "FULL")
        stack.callback(raw.close)
        actual = _synchronous_of(manager)
        if actual != "FULL":
            raise AssertionError(f"sessionflow's connections run with synchronous={actual}, not FULL")
        (journal,) = raw.conn.execute("PRAGMA journal_mode").fetchone()
        (raw_level,) = raw.conn.execute("PRAGMA synchronous").fetchone()
        if (str(journal).lower(), int(raw_level)) != ("wal", 2):
            raise AssertionError(f"the raw connection runs with journal_mode={journal}, synchronous={raw_level}")
        contenders = [
            Contender("sessionflow, SQLite FULL (WAL)", "session", ours.run, profile=True),
            Contender("raw sqlite3, SQLite FULL (WAL)", "session", raw.run),
        ]
        ctx.log(f"  SQLite FULL: {n} sessions x {rounds} rounds")
        results = ctx.measure(contenders, n, rounds)
        loads.append(load_average())
        problems = raw_sqlite_problems(ours_path, ours.last_session_id, raw, raw_path)
        if problems:
            raise AssertionError("the raw sqlite3 rows differ from sessionflow's: " + "; ".join(problems))
        if ctx.profile:
            section.profiles.append(profile_contender(contenders[0], n))
    subject = section.add(results[contenders[0].label], "throughput")
    section.compare(subject, section.add(results[contenders[1].label], "throughput"), "throughput", _SQLITE_TARGET)
    return subject


def run(ctx: Context) -> Section:
    section = Section(name="durable", title="Lifecycle at real durability (PostgreSQL fsync on, SQLite FULL)",
                      description=__doc__ or "")
    loads = [load_average()]
    ours_pg = _postgres(ctx, section, loads)
    ours_sqlite = _sqlite(ctx, section, loads)
    # What several writers gain when their commits can share the disk's flushes.
    section.compare(ours_pg[8], ours_pg[1], "throughput")
    section.compare(ours_pg[1], ours_sqlite, "throughput")
    rows = ["| Contender | sessions/s | per session | per commit (3 per session) |", "|---|---|---|---|"]
    for m in section.measurements:
        rows.append(f"| {m.label} | {m.per_second:,.0f} | {m.format(m.median)} | {m.format(m.median / 3)} |")
    section.blocks.append("Throughput at real durability (median of the rounds; with several threads, the time per "
                          "session is wall-clock time divided by the sessions of all threads):\n\n" + "\n".join(rows))
    section.notes.append(f"PostgreSQL server: {ctx.postgres.durable_origin}; over loopback TCP. sessionflow and the "
                         "raw statements share one database, eventsourcing has another on the same server.")
    section.notes.append("SQLite: WAL, `synchronous = FULL` (checked on sessionflow's connections and on the raw "
                         "one); the files live in the run's temporary directory, on the machine's disk.")
    section.notes.append("Checked in the run: a raw-written session has the same columns, events and JSON as a "
                         "sessionflow-written one (ids and timestamps aside) and reads back through sessionflow "
                         "equal to the fold of its history.")
    section.notes.append("Load average (1 min) at the start and after each group of rounds: "
                         + " / ".join(f"{x:.2f}" for x in loads))
    return section


BENCHMARK = Benchmark(name="durable", title="Lifecycle at real durability (PostgreSQL fsync on, SQLite FULL)",
                      run=run, order=32, needs_postgres=True,
                      summary="create+start+complete with every commit flushed: durable PostgreSQL (1 and 8 "
                              "threads) vs raw psycopg and eventsourcing; SQLite FULL vs raw sqlite3")
