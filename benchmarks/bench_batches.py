"""Batches and group commit at real durability: how to beat the one-commit-per-step loop without acknowledging
anything early.

At real durability each commit waits for the disk, so a loop that commits every step (create, start, complete:
three commits per session) is bounded by the flushes, not by the statements. Two ways to commit less often:

* batches: ``create_many`` of 100 sessions, then ``send_many`` starting them, then ``send_many`` completing
  them — three transactions per 100 sessions, each item still validated, decided by the lifecycle and
  versioned (one thread);
* group commit: ``SessionManager(..., group_commit=True)`` and 8 threads each running the ordinary
  one-session-at-a-time lifecycle, and 32 threads (a web server's worker pool); the writes that arrive while a
  commit is under way share the next one, and each call returns only after its own commit. A group holds at
  most one write per thread, so more threads make larger groups.

The reference is the raw one-commit-per-step loop (`benchmarks/raw_sql.py`: raw psycopg 3 with one statement
per step in autocommit; raw ``sqlite3``), on the same durable server — PostgreSQL with ``fsync``,
``synchronous_commit`` and ``full_page_writes`` on, started for the run (``PostgresProvider.durable_database``)
— and on SQLite in WAL mode with ``synchronous = FULL``. The raw loop is also run from 8 and 32 threads (one
connection each), where PostgreSQL itself lets concurrent commits share a WAL flush. Every write is durable
when acknowledged, in every contender. Contenders run interleaved, round by round.
"""

from __future__ import annotations

import contextlib
from typing import Any

from benchmarks.bench_lifecycle_sqlite import _synchronous_of
from benchmarks.checks import reads_back
from benchmarks.environment import conninfo
from benchmarks.framework import Benchmark, Contender, Context, Section, Target
from benchmarks.raw_sql import RawPostgresLifecycle, RawSqliteLifecycle
from benchmarks.workload import METADATA, MODULE, TTL, WORKSPACE, SessionflowLifecycle, spread, user_for
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

BATCH = 100
THREADS = 8
#: The threads of the larger group-commit contender (a web server's worker pool, say).
MANY = 32
_TARGET = Target(">=", 3.0, "issue 14: batches or group commit vs the raw one-commit-per-step loop")


class SessionflowBatches:
    """``run(n)``: ``n`` sessions created, started and completed in batches of :data:`BATCH` (three
    transactions per batch)."""

    def __init__(self, manager: SessionManager, batch: int = BATCH) -> None:
        self.manager = manager
        self.batch = batch
        self.last_session_ids: list[Any] = []

    def run(self, n: int) -> None:
        manager = self.manager
        for first in range(0, n, self.batch):
            size = min(self.batch, n - first)
            created = manager.create_many(
                [{"user_id": user_for(first + i), "workspace_id": WORKSPACE, "module_name": MODULE,
                  "metadata": METADATA, "ttl": TTL} for i in range(size)], performer_id="batch")
            manager.send_many([(s.id, "start") for s in created], performer_id="batch")
            manager.send_many([(s.id, "complete") for s in created], performer_id="batch")
            self.last_session_ids = [s.id for s in created]


def _postgres(ctx: Context, section: Section, rounds: int, n: int) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(ctx.postgres.durable_database("sfbench_batches"))
        info = conninfo(url)
        plain = stack.enter_context(SessionManager.open(url, pool_size=THREADS, max_overflow=2))
        grouped = stack.enter_context(SessionManager.open(url, pool_size=MANY, max_overflow=2, group_commit=True))
        batches = SessionflowBatches(plain)
        raws = [RawPostgresLifecycle(info, "statement") for _ in range(MANY)]
        for raw in raws:
            stack.callback(raw.close)
        labels = {"raw1": "raw psycopg loop, 1 thread", "raw8": f"raw psycopg loop, {THREADS} threads",
                  "raw32": f"raw psycopg loop, {MANY} threads",
                  "batches": f"sessionflow batches of {BATCH}, 1 thread",
                  "group8": f"sessionflow group commit, {THREADS} threads",
                  "group32": f"sessionflow group commit, {MANY} threads",
                  "plain": f"sessionflow single writes, {THREADS} threads"}
        contenders = [
            Contender(labels["raw1"], "session", raws[0].run),
            Contender(labels["raw8"], "session", spread([r.run for r in raws[:THREADS]]), threads=THREADS),
            Contender(labels["raw32"], "session", spread([r.run for r in raws]), threads=MANY),
            Contender(labels["batches"], "session", batches.run, profile=True),
            Contender(labels["group8"], "session",
                      spread([SessionflowLifecycle(grouped).run for _ in range(THREADS)]), threads=THREADS),
            Contender(labels["group32"], "session",
                      spread([SessionflowLifecycle(grouped).run for _ in range(MANY)]), threads=MANY),
            Contender(labels["plain"], "session",
                      spread([SessionflowLifecycle(plain).run for _ in range(THREADS)]), threads=THREADS),
        ]
        ctx.log(f"  PostgreSQL (durable): {n} sessions x {rounds} rounds")
        group = grouped._delivery.group  # how many commits the grouped writes took
        before = group.commits if group is not None else 0
        results = ctx.measure(contenders, n, rounds)
        problems = reads_back(url, batches.last_session_ids[:3])
        if problems:
            raise AssertionError("batch-written sessions do not read back: " + "; ".join(problems))
        if group is not None and group.commits > before:
            writes = 2 * 3 * n * (rounds + 1)
            section.notes.append(f"PostgreSQL group commit: {writes:,} writes of the {THREADS}- and {MANY}-thread "
                                 f"contenders took {group.commits - before:,} commits "
                                 f"({writes / (group.commits - before):.1f} writes per commit).")
    measured = {key: section.add(results[label], "throughput") for key, label in labels.items()}
    section.compare(measured["batches"], measured["raw1"], "throughput", _TARGET)
    section.compare(measured["group8"], measured["raw1"], "throughput")
    section.compare(measured["group32"], measured["raw1"], "throughput", _TARGET)
    section.compare(measured["group8"], measured["raw8"], "throughput")
    section.compare(measured["group32"], measured["raw32"], "throughput")
    section.compare(measured["group8"], measured["plain"], "throughput")


def _sqlite(ctx: Context, section: Section, rounds: int, n: int) -> None:
    with contextlib.ExitStack() as stack:
        ours_path = ctx.workdir / "batches-full.db"
        raw_path = ctx.workdir / "batches-raw-full.db"
        plain = stack.enter_context(SessionManager.open(f"sqlite:///{ours_path}", sqlite_synchronous="FULL"))
        grouped = stack.enter_context(SessionManager.open(f"sqlite:///{ours_path}", sqlite_synchronous="FULL",
                                                          group_commit=True))
        SessionManager.open(f"sqlite:///{raw_path}").close()
        raw = RawSqliteLifecycle(str(raw_path), "FULL")
        stack.callback(raw.close)
        for manager in (plain, grouped):
            if _synchronous_of(manager) != "FULL":
                raise AssertionError("sessionflow's SQLite connections do not run with synchronous=FULL")
        batches = SessionflowBatches(plain)
        labels = {"raw1": "raw sqlite3 loop, FULL", "batches": f"sessionflow batches of {BATCH}, FULL",
                  "group": f"sessionflow group commit, {THREADS} threads, FULL"}
        contenders = [
            Contender(labels["raw1"], "session", raw.run),
            Contender(labels["batches"], "session", batches.run),
            Contender(labels["group"], "session",
                      spread([SessionflowLifecycle(grouped).run for _ in range(THREADS)]), threads=THREADS),
        ]
        ctx.log(f"  SQLite FULL: {n} sessions x {rounds} rounds")
        results = ctx.measure(contenders, n, rounds)
        problems = reads_back(f"sqlite:///{ours_path}", batches.last_session_ids[:3])
        if problems:
            raise AssertionError("batch-written sessions do not read back: " + "; ".join(problems))
    measured = {key: section.add(results[label], "throughput") for key, label in labels.items()}
    section.compare(measured["batches"], measured["raw1"], "throughput", _TARGET)
    section.compare(measured["group"], measured["raw1"], "throughput", _TARGET)


def run(ctx: Context) -> Section:
    section = Section(name="batches", title="Batches and group commit at real durability",
                      description=__doc__ or "")
    rounds = ctx.scale(5, 2)
    _postgres(ctx, section, rounds, ctx.scale(800, 16))
    _sqlite(ctx, section, rounds, ctx.scale(400, 16))
    section.notes.append(f"PostgreSQL server: {ctx.postgres.durable_origin}.")
    section.notes.append("Checked in the run: sessions written in batches read back through sessionflow equal to "
                         "the fold of their history.")
    return section


BENCHMARK = Benchmark(name="batches", title="Batches and group commit at real durability", run=run, order=36,
                      needs_postgres=True,
                      summary="create_many/send_many and group commit vs the raw one-commit-per-step loop, "
                              "durable PostgreSQL and SQLite FULL")
