"""``get`` latency on a SQLite database holding 1,000,000 sessions (10,000 in quick mode).

* cold: a manager with ``cache_size=0`` reading sessions drawn at random (fresh ids every round, so neither
  sessionflow's cache nor SQLite's page cache of the connection has them; the operating system's file
  cache is warm, as on any busy server);
* warm: a manager with the default read cache reading the same 1,000 sessions over and over (each ``get``
  still reads the row to check the cached version);
* ceiling: raw ``sqlite3`` running the primary-key ``SELECT`` of the same columns and fetching the row, with
  ids drawn the same way;
* peer: the ``eventsourcing`` library's ``repository.get`` on an equivalent database of its own (same number
  of aggregates and statuses; it reads and replays the aggregate's events; it has no cache by default).

The data set is described in `benchmarks/dataset.py`.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from typing import Any
from uuid import UUID

from benchmarks.dataset import eventsourcing_dataset, sessions_dataset
from benchmarks.framework import Benchmark, Contender, Context, Section, Target, profile_contender
from benchmarks.peer_eventsourcing import sessions_app, sqlite_env
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

_WARM_SET = 1000


def run(ctx: Context) -> Section:
    section = Section(name="get", title="get latency, 1M sessions (SQLite)" if not ctx.quick else
                      "get latency (SQLite, quick size)", description=__doc__ or "")
    size = ctx.scale(1_000_000, 10_000)
    rounds = ctx.scale(15, 2)  # cheap rounds, and the cold ones vary: many of them
    per_round = ctx.scale(2000, 200)
    data = sessions_dataset(size, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    es_data = eventsourcing_dataset(size, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    rng = random.Random()

    with contextlib.ExitStack() as stack:
        cold_manager = stack.enter_context(SessionManager.open(data.url, migrate=False, cache_size=0))
        warm_manager = stack.enter_context(SessionManager.open(data.url, migrate=False))
        raw = stack.enter_context(contextlib.closing(sqlite3.connect(data.path, check_same_thread=False)))
        columns = [row[1] for row in raw.execute("PRAGMA table_info(sessions)")]
        select = f"SELECT {', '.join(columns)} FROM sessions WHERE id = ?"
        app = stack.enter_context(sessions_app(sqlite_env(str(es_data.path))))

        ids: dict[str, list[Any]] = {}

        def draw(key: str, table: str = "sessions", column: str = "id", as_uuid: bool = False) -> Any:
            def prepare(n: int) -> None:
                values = (data if table == "sessions" else es_data).random_ids(n, rng, table, column)
                ids[key] = [UUID(v) for v in values] if as_uuid else values
            return prepare

        def cyclic(key: str, n: int) -> list[Any]:
            fixed = ids[key]
            return [fixed[i % len(fixed)] for i in range(n)]

        def sf_get(manager: SessionManager, key: str, warm: bool) -> Any:
            def run_gets(n: int) -> None:
                get = manager.get
                for sid in (cyclic(key, n) if warm else ids[key][:n]):
                    get(sid)
            return run_gets

        def raw_get(key: str, warm: bool) -> Any:
            def run_gets(n: int) -> None:
                execute = raw.execute
                for sid in (cyclic(key, n) if warm else ids[key][:n]):
                    if execute(select, (sid,)).fetchone() is None:
                        raise AssertionError(f"no session {sid}")
            return run_gets

        def es_get(key: str, warm: bool) -> Any:
            def run_gets(n: int) -> None:
                get = app.repository.get
                for sid in (cyclic(key, n) if warm else ids[key][:n]):
                    get(sid)
            return run_gets

        cold = [
            Contender("sessionflow get, cold (cache_size=0)", "get", sf_get(cold_manager, "sf-cold", False),
                      prepare=draw("sf-cold", as_uuid=True), profile=True),
            Contender("raw sqlite3 primary-key SELECT, cold", "get", raw_get("raw-cold", False),
                      prepare=draw("raw-cold")),
            Contender("eventsourcing repository.get, cold", "get", es_get("es-cold", False),
                      prepare=draw("es-cold", "stored_events", "originator_id", as_uuid=True)),
        ]
        ctx.log(f"  cold: {per_round} random gets x {rounds} rounds")
        cold_results = ctx.measure(cold, per_round, rounds)

        draw("sf-warm", as_uuid=True)(_WARM_SET)
        ids["raw-warm"] = [u.hex for u in ids["sf-warm"]]
        draw("es-warm", "stored_events", "originator_id", as_uuid=True)(_WARM_SET)
        for sid in ids["sf-warm"]:  # fill the read cache
            warm_manager.get(sid)
        warm = [
            Contender("sessionflow get, warm (read cache)", "get", sf_get(warm_manager, "sf-warm", True), profile=True),
            Contender("raw sqlite3 primary-key SELECT, warm", "get", raw_get("raw-warm", True)),
            Contender("eventsourcing repository.get, warm", "get", es_get("es-warm", True)),
        ]
        ctx.log(f"  warm: {per_round} gets over {_WARM_SET} sessions x {rounds} rounds")
        warm_results = ctx.measure(warm, per_round, rounds)
        if ctx.profile:
            section.profiles.append(profile_contender(cold[0], per_round))
            section.profiles.append(profile_contender(warm[0], per_round))

    for results, contenders in ((cold_results, cold), (warm_results, warm)):
        ours, reference, peer = (section.add(results[c.label]) for c in contenders)
        section.compare(ours, reference, "latency", Target("<=", 2.0, "issue 3"))
        section.compare(ours, peer, "latency")
    built = f"built in {data.built_seconds:.0f} s in this run" if data.built_seconds else "taken from the cache"
    section.notes.append(f"Data set: {size:,} sessions ({built}); file {data.path.stat().st_size / 2**20:,.0f} MiB "
                         f"with their {_count(data.path, 'session_events'):,} events.")
    section.notes.append("A sample of the sessions was read back through sessionflow and matched its rows and "
                         "the fold of its history before measuring.")
    return section


def _count(path: Any, table: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (rows,) = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()
    return int(rows or 0)


BENCHMARK = Benchmark(name="get", title="get latency on 1M sessions", run=run, order=40,
                      summary="manager.get on 1,000,000 SQLite sessions vs a raw primary-key SELECT")
