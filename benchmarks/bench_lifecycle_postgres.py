"""Durable lifecycle throughput on PostgreSQL: create + start + complete per session, each step committed,
from 1 and from 8 threads.

* sessionflow: ``SessionManager.open("postgresql+psycopg://…")`` (pool of at least as many connections as
  threads), one manager shared by the threads; and the same lifecycle with a fresh idempotency key on each of
  its three writes ("keyed", a manager of its own on the same database), compared with the unkeyed one: what
  keys cost.
* ceilings: raw psycopg 3 writing the same rows into the same schema (created by sessionflow's migrations),
  one connection per thread, in two patterns: three explicit transactions per session (``BEGIN``,
  ``INSERT``/``UPDATE`` + event ``INSERT``, ``COMMIT``) and one statement per step in autocommit (a CTE);
  sessionflow is compared with the better of the two.
* peer: the ``eventsourcing`` library's PostgreSQL persistence doing the same lifecycle, one application
  shared by the threads (its pool sized to the thread count).

sessionflow and the raw code share one fresh database (the same tables), eventsourcing has another on the
same server. Contenders run interleaved, round by round.
"""

from __future__ import annotations

import contextlib

from benchmarks.checks import postgres_fetch, reads_back, same_rows
from benchmarks.environment import conninfo
from benchmarks.framework import (
    Benchmark,
    Contender,
    Context,
    Section,
    Target,
    profile_contender,
)
from benchmarks.peer_eventsourcing import lifecycle, postgres_env, postgres_missing, sessions_app
from benchmarks.raw_sql import RawPostgresLifecycle
from benchmarks.workload import SessionflowLifecycle, spread
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

_PATTERNS = {"transactions": "raw psycopg, 3 transactions", "statement": "raw psycopg, 1 statement per step"}


def run(ctx: Context) -> Section:
    section = Section(name="lifecycle-postgres", title="Durable lifecycle, PostgreSQL", description=__doc__ or "")
    rounds = ctx.scale(7, 2)
    sizes = {1: ctx.scale(300, 10), 8: ctx.scale(800, 16)}
    es_missing = postgres_missing()
    if es_missing is not None:
        section.notes.append(f"eventsourcing peer not run: {es_missing}")
        ctx.log(f"  eventsourcing peer not run: {es_missing}")
    with contextlib.ExitStack() as outer:
        url = outer.enter_context(ctx.postgres.fresh_database("sfbench_lifecycle"))
        es_url = outer.enter_context(ctx.postgres.fresh_database("sfbench_es"))
        info = conninfo(url)
        for threads, n in sizes.items():
            suffix = f"{threads} thread" + ("s" if threads > 1 else "")
            with contextlib.ExitStack() as stack:
                manager = stack.enter_context(SessionManager.open(url, pool_size=max(5, threads), max_overflow=2))
                ours = [SessionflowLifecycle(manager) for _ in range(threads)]
                keyed_manager = stack.enter_context(SessionManager.open(url, pool_size=max(5, threads),
                                                                        max_overflow=2))
                keyed = [SessionflowLifecycle(keyed_manager, keyed=True) for _ in range(threads)]
                raws = {pattern: [RawPostgresLifecycle(info, pattern) for _ in range(threads)]  # type: ignore[arg-type]
                        for pattern in _PATTERNS}
                for group in raws.values():
                    for raw in group:
                        stack.callback(raw.close)
                peer: list[Contender] = []
                if es_missing is None:
                    app = stack.enter_context(sessions_app(postgres_env(es_url, pool_size=max(5, threads))))
                    peer.append(Contender(f"eventsourcing, {suffix}", "session", spread([lifecycle(app)] * threads),
                                          threads=threads))

                contenders = [
                    Contender(f"sessionflow, {suffix}", "session", spread([o.run for o in ours]), threads=threads,
                              profile=threads == 1),
                    Contender(f"sessionflow keyed, {suffix}", "session", spread([k.run for k in keyed]),
                              threads=threads),
                    *(Contender(f"{label}, {suffix}", "session", spread([r.run for r in raws[pattern]]),
                                threads=threads) for pattern, label in _PATTERNS.items()),
                    *peer,
                ]
                ctx.log(f"  PostgreSQL, {suffix}: {n} sessions x {rounds} rounds")
                results = ctx.measure(contenders, n, rounds)

                fetch = postgres_fetch(url, stack)
                problems: list[str] = []
                for pattern, group in raws.items():
                    raw_id = group[0].last_session_id
                    problems += [f"{pattern}: {p}" for p in same_rows((fetch, ours[0].last_session_id),
                                                                      (fetch, raw_id))]
                    problems += reads_back(url, [raw_id])
                if problems:
                    raise AssertionError("the raw psycopg rows differ from sessionflow's: " + "; ".join(problems))
                if ctx.profile and threads == 1:
                    section.profiles.append(profile_contender(contenders[0], n))

            subject = section.add(results[f"sessionflow, {suffix}"], "throughput")
            keyed_result = section.add(results[f"sessionflow keyed, {suffix}"], "throughput")
            section.compare(keyed_result, subject, "throughput",
                            Target(">=", 0.9, "idempotency keys cost at most 10%"))
            raw_results = [section.add(results[f"{label}, {suffix}"], "throughput") for label in _PATTERNS.values()]
            best = min(raw_results, key=lambda m: m.median)
            section.compare(subject, best, "throughput", Target(">=", 0.7, "issue 3: best raw pattern"))
            if es_missing is None:
                es = section.add(results[f"eventsourcing, {suffix}"], "throughput")
                section.compare(subject, es, "throughput", Target(">=", 2.0, "issue 3"))
    section.notes.append(f"Server: {ctx.postgres.origin}. All contenders run against it over loopback TCP.")
    section.notes.append("Checked in the run: a raw-written session (each pattern) has the same columns, events "
                         "and JSON as a sessionflow-written one (ids and timestamps aside) and reads back through "
                         "sessionflow equal to the fold of its history.")
    return section


BENCHMARK = Benchmark(name="lifecycle-postgres", title="Durable lifecycle, PostgreSQL", run=run, order=30,
                      needs_postgres=True,
                      summary="create+start+complete on PostgreSQL, 1 and 8 threads, vs raw psycopg and "
                              "eventsourcing")
