"""Durable lifecycle throughput of the asyncio facade on PostgreSQL: create + start + complete per session, each
step committed, from 50 concurrent tasks in one process, beside the synchronous manager from 8 threads.

* sessionflow async: ``AsyncSessionManager.open("postgresql+psycopg://…")`` — psycopg 3's asyncio driver through
  SQLAlchemy's async engine, the synchronous manager's pipeline run in greenlets on the event loop — one manager
  shared by 50 tasks on one loop (a pool of 10 connections); each task does its share of the sessions one
  after another.
* sessionflow async, 8 tasks: the same with as many tasks as the threads below.
* sessionflow sync: ``SessionManager.open(...)`` shared by 8 threads (pool of 8 + 2 connections), as in the
  ``lifecycle-postgres`` benchmark.

All write into one fresh database; contenders run interleaved, round by round.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

from benchmarks.checks import reads_back
from benchmarks.framework import Benchmark, Contender, Context, Section, Target, profile_contender
from benchmarks.workload import METADATA, MODULE, TTL, WORKSPACE, SessionflowLifecycle, threaded, user_for
from sessionflow import AsyncSessionManager, SessionManager

__all__ = ["BENCHMARK"]

TASKS = 50
THREADS = 8


class AsyncLifecycle:
    """``run(n)``: ``n`` sessions created, started and completed through ``manager`` by ``tasks`` tasks at once,
    on ``runner``'s event loop."""

    def __init__(self, runner: asyncio.Runner, manager: AsyncSessionManager, tasks: int) -> None:
        self.runner = runner
        self.manager = manager
        self.tasks = tasks
        self.last_session_id: UUID | None = None

    async def _task(self, count: int, offset: int) -> None:
        manager = self.manager
        for i in range(offset, offset + count):
            user = user_for(i)
            session = await manager.create(user_id=user, workspace_id=WORKSPACE, module_name=MODULE,
                                           metadata=METADATA, ttl=TTL, performer_id=user)
            await manager.start(session.id, performer_id=user)
            await manager.complete(session.id, performer_id=user)
            self.last_session_id = session.id

    async def _all(self, n: int) -> None:
        share, extra = divmod(n, self.tasks)
        counts = [share + (1 if i < extra else 0) for i in range(self.tasks)]
        offsets = [sum(counts[:i]) for i in range(self.tasks)]
        await asyncio.gather(*(self._task(c, o) for c, o in zip(counts, offsets, strict=True) if c))

    def run(self, n: int) -> None:
        self.runner.run(self._all(n))


def run(ctx: Context) -> Section:
    section = Section(name="async-postgres", title="Asyncio facade, PostgreSQL", description=__doc__ or "")
    rounds = ctx.scale(7, 2)
    n = ctx.scale(1500, 100)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(ctx.postgres.fresh_database("sfbench_async"))
        runner = stack.enter_context(asyncio.Runner())
        amgr = runner.run(_open(url))
        stack.callback(lambda: runner.run(amgr.close()))
        manager = stack.enter_context(SessionManager.open(url, pool_size=THREADS, max_overflow=2))
        many = AsyncLifecycle(runner, amgr, TASKS)
        few = AsyncLifecycle(runner, amgr, THREADS)
        ours = [SessionflowLifecycle(manager) for _ in range(THREADS)]
        workers: list[Callable[[int], object]] = [o.run for o in ours]
        contenders = [
            Contender(f"sessionflow async, {TASKS} tasks", "session", many.run, threads=1, profile=True),
            Contender(f"sessionflow async, {THREADS} tasks", "session", few.run, threads=1),
            Contender(f"sessionflow sync, {THREADS} threads", "session", threaded(workers), threads=THREADS),
        ]
        checked = [many, few]
        ctx.log(f"  PostgreSQL: {n} sessions x {rounds} rounds")
        results = ctx.measure(contenders, n, rounds)
        problems = reads_back(url, [c.last_session_id for c in checked])
        if problems:
            raise AssertionError("sessions written by the asyncio facade do not read back: " + "; ".join(problems))
        if ctx.profile:
            section.profiles.append(profile_contender(contenders[0], n))
    measured = {c.label: section.add(results[c.label], "throughput") for c in contenders}
    sync = measured[f"sessionflow sync, {THREADS} threads"]
    section.compare(measured[contenders[0].label], sync, "throughput",
                    Target(">", 1.0, "asyncio issue: ahead of sync, 8 threads"))
    for label, measurement in measured.items():
        if measurement is not sync and label != contenders[0].label:
            section.compare(measurement, sync, "throughput")
    section.notes.append(f"Server: {ctx.postgres.origin}. Everything runs against it over loopback TCP; the "
                         "benchmark process and the server share the machine's cores.")
    section.notes.append("The async contenders run all their Python on one thread (the loop's), the sync one on "
                         "eight that overlap their socket calls: when other processes keep the machine's cores "
                         "busy, the single thread gets the smaller share and the ratio moves in the sync "
                         "manager's favour (see the machine's load in the header).")
    section.notes.append("Checked in the run: the last session of each async contender reads back through a "
                         "synchronous manager as completed at version 3, equal to the fold of its history.")
    return section


async def _open(url: str) -> AsyncSessionManager:
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 0}
    return await AsyncSessionManager.open(url, **options)


BENCHMARK = Benchmark(name="async-postgres", title="Asyncio facade, PostgreSQL", run=run, order=35,
                      needs_postgres=True,
                      summary="create+start+complete on PostgreSQL: AsyncSessionManager with 50 tasks vs the "
                              "synchronous manager with 8 threads")
