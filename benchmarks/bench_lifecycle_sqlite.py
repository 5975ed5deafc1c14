"""Durable lifecycle throughput on SQLite: create + start + complete per session, each step committed.

* sessionflow: ``SessionManager.open("sqlite:///…")`` (WAL) with ``sqlite_synchronous`` ``NORMAL`` (the
  default) and ``FULL``, on a file whose schema its migrations created; and the same lifecycle with a fresh
  idempotency key on each of its three writes ("keyed", on a file of its own), compared with the unkeyed one:
  what keys cost.
* ceiling: raw ``sqlite3`` on one connection writing the same rows into a schema created the same way, at
  the same ``synchronous`` level (see `benchmarks/raw_sql.py`).
* peer (``FULL`` only): the ``eventsourcing`` library's SQLite persistence doing the same lifecycle; it
  does not lower ``synchronous``, so it runs at SQLite's default, ``FULL`` (checked in the run).

Each contender has its own database file; they run interleaved, round by round.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks import sampling
from benchmarks.checks import raw_sqlite_problems
from benchmarks.framework import (
    Benchmark,
    Contender,
    Context,
    Measurement,
    Section,
    Target,
    profile_contender,
)
from benchmarks.peer_eventsourcing import lifecycle, sessions_app, sqlite_env, sqlite_synchronous
from benchmarks.raw_sql import RawSqliteLifecycle
from benchmarks.workload import SessionflowLifecycle
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

_LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _synchronous_of(manager: SessionManager) -> str:
    engine: Any = getattr(manager.store, "engine", None)
    if engine is None:
        return "?"
    raw = engine.raw_connection()
    try:
        level = raw.driver_connection.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        raw.close()
    return _LEVELS.get(int(level), str(level))


def run(ctx: Context) -> Section:
    section = Section(name="lifecycle-sqlite", title="Durable lifecycle, SQLite", description=__doc__ or "")
    rounds = ctx.scale(7, 2)
    sizes = {"NORMAL": ctx.scale(2000, 30), "FULL": ctx.scale(200, 10)}
    for level, n in sizes.items():
        with contextlib.ExitStack() as stack:
            ours_path = ctx.workdir / f"sessionflow-{level.lower()}.db"
            keyed_path = ctx.workdir / f"sessionflow-keyed-{level.lower()}.db"
            raw_path = ctx.workdir / f"raw-{level.lower()}.db"
            manager = stack.enter_context(SessionManager.open(f"sqlite:///{ours_path}", sqlite_synchronous=level))
            keyed_manager = stack.enter_context(SessionManager.open(f"sqlite:///{keyed_path}",
                                                                    sqlite_synchronous=level))
            # The raw contender's schema comes from sessionflow's migrations too (then the manager is closed).
            SessionManager.open(f"sqlite:///{raw_path}").close()
            ours = SessionflowLifecycle(manager)
            keyed = SessionflowLifecycle(keyed_manager, keyed=True)
            raw = RawSqliteLifecycle(str(raw_path), level)
            stack.callback(raw.close)
            contenders = [
                Contender(f"sessionflow, SQLite {level}", "session", ours.run, profile=True),
                Contender(f"sessionflow keyed, SQLite {level}", "session", keyed.run),
                Contender(f"raw sqlite3, SQLite {level}", "session", raw.run),
            ]

            es_label = ""
            if level == "FULL":
                app = stack.enter_context(sessions_app(sqlite_env(str(ctx.workdir / "eventsourcing.db"))))
                es_label = f"eventsourcing, SQLite {sqlite_synchronous(app)}"
                contenders.append(Contender(es_label, "session", lifecycle(app)))
            actual = _synchronous_of(manager)
            if actual != level:
                raise AssertionError(f"sessionflow's connections run with synchronous={actual}, not {level}")
            ctx.log(f"  SQLite {level}: {n} sessions x {rounds} rounds")
            results = ctx.measure(contenders, n, rounds)

            # The raw rows must be sessionflow's rows, and read back through sessionflow.
            problems = raw_sqlite_problems(ours_path, ours.last_session_id, raw, raw_path)
            if problems:
                raise AssertionError("the raw sqlite3 rows differ from sessionflow's: " + "; ".join(problems))
            if ctx.profile:
                section.profiles.append(profile_contender(contenders[0], n))
            if level == "NORMAL":
                profiled = _write_profile(ctx, ours.run, raw.run)
                if profiled is not None:
                    section.blocks.append(profiled)

        subject = section.add(results[f"sessionflow, SQLite {level}"], "throughput")
        keyed_result = section.add(results[f"sessionflow keyed, SQLite {level}"], "throughput")
        section.compare(keyed_result, subject, "throughput", Target(">=", 0.9, "idempotency keys cost at most 10%"))
        reference = section.add(results[f"raw sqlite3, SQLite {level}"], "throughput")
        section.compare(subject, reference, "throughput",
                        Target(">=", 0.6 if level == "NORMAL" else 0.8, "issue 3"))
        if es_label:
            peer: Measurement = section.add(results[es_label], "throughput")
            section.compare(subject, peer, "throughput", Target(">", 1.0, "issue 3: ahead"))
    section.notes.append("Checked in the run: the sessionflow connections report the configured `synchronous` "
                         "level; a raw-written session has the same columns, events and JSON as a "
                         "sessionflow-written one (ids and timestamps aside) and reads back through "
                         "sessionflow equal to the fold of its history.")
    return section


def _write_profile(ctx: Context, ours: Callable[[int], None], raw: Callable[[int], None]) -> str | None:
    """Where a write's time goes, sessionflow beside raw sqlite3: each lifecycle run in this process for a few
    seconds while py-spy samples it (``benchmarks/sampling.py``; every sample of this thread, in a driver call
    or not)."""
    why = sampling.available()
    if why is not None:
        ctx.log(f"  no write profile: {why}")
        return None
    seconds = ctx.scale(6, 1)
    columns = []
    for label, run, frame in (("sessionflow, SQLite NORMAL", ours, "SessionflowLifecycle.run"),
                              ("raw sqlite3, SQLite NORMAL", raw, "RawSqliteLifecycle.run")):
        profiles: list[sampling.Profile] = []
        sampler = threading.Thread(target=lambda into=profiles: into.append(
            sampling.sample(os.getpid(), seconds, gil=False)))
        sampler.start()
        time.sleep(0.3)  # py-spy attached
        sessions, began = 0, time.perf_counter()
        while sampler.is_alive():
            run(20)
            sessions += 20
        rate = 3 * sessions / (time.perf_counter() - began)
        mine = profiles[0].within(frame)  # this thread, inside the lifecycle
        columns.append((f"{label} ({rate:,.0f} writes/s)", sampling.breakdown(
            mine, sampling.WRITE_PARTS, innermost=True), rate * mine.seconds))
    return ("Where a write's time goes on SQLite NORMAL, one thread (py-spy, every sample of the thread, "
            f"{sampling.RATE}/s for {seconds} s while it runs the lifecycle; per write: a third of a session; "
            "the driver call includes SQLite's own work):\n\n" + sampling.table(columns, sampling.WRITE_PARTS))


BENCHMARK = Benchmark(name="lifecycle-sqlite", title="Durable lifecycle, SQLite", run=run, order=20,
                      summary="create+start+complete on SQLite NORMAL/FULL vs raw sqlite3 and eventsourcing")
