"""``list`` with a filter (``status`` + ``user_id``) and ``limit=100`` on the same 1,000,000-session database.

* sessionflow: ``manager.list(status="in_progress", user_id=<a random user>, limit=100)``; it first checks
  whether any live session is overdue (an index probe), then runs its query and builds the sessions;
* ceiling: raw ``sqlite3`` running the equivalent ``SELECT`` (same columns, same filters including "not
  deleted" and "not past its deadline", same order, same limit) and fetching the rows.

About 1,000 users share the sessions, 30 % of them in progress, so a full page comes back with the full
data set (a few rows in quick mode).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from typing import Any

from benchmarks.dataset import USERS, sessions_dataset, user_name
from benchmarks.framework import Benchmark, Contender, Context, Section, calibrate, profile_contender
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]



def _index_on(conn: sqlite3.Connection, column: str) -> str | None:
    """The name of an index of ``sessions`` whose first column is ``column``, if there is one."""
    for row in conn.execute("PRAGMA index_list(sessions)"):
        name = str(row[1])
        first = conn.execute(f'PRAGMA index_info("{name}")').fetchone()
        if first is not None and first[2] == column:
            return name
    return None


def run(ctx: Context) -> Section:
    section = Section(name="list", title="list with a filter, 1M sessions (SQLite)" if not ctx.quick else
                      "list with a filter (SQLite, quick size)", description=__doc__ or "")
    size = ctx.scale(1_000_000, 10_000)
    rounds = ctx.scale(5, 2)
    data = sessions_dataset(size, cache_dir=ctx.cache_dir, workdir=ctx.workdir, log=ctx.log)
    rng = random.Random()
    returned: list[int] = []

    with contextlib.ExitStack() as stack:
        manager = stack.enter_context(SessionManager.open(data.url, migrate=False))
        raw = stack.enter_context(contextlib.closing(sqlite3.connect(data.path, check_same_thread=False)))
        columns = [row[1] for row in raw.execute("PRAGMA table_info(sessions)")]
        select = (f"SELECT {', '.join(columns)} FROM sessions WHERE deleted_at IS NULL AND status IN (?) "
                  "AND user_id = ? AND (due_at IS NULL OR due_at > ?) ORDER BY created_at, id LIMIT ? OFFSET ?")
        users: dict[str, list[str]] = {}

        def draw(key: str) -> Any:
            def prepare(n: int) -> None:
                users[key] = [user_name(rng.randrange(USERS)) for _ in range(n)]
            return prepare

        def sf_list(n: int) -> None:
            page = manager.list
            for user in users["sf"][:n]:
                returned.append(len(page(status="in_progress", user_id=user, limit=100)))

        def raw_list(key: str, sql: str) -> Any:
            def run_lists(n: int) -> None:
                execute = raw.execute
                for user in users[key][:n]:
                    now = int(time.time() * 1000)
                    execute(sql, ("in_progress", user, now, 100, 0)).fetchall()
            return run_lists

        contenders = [
            Contender("sessionflow list(status, user_id, limit=100)", "list", sf_list, prepare=draw("sf"),
                      profile=True),
            Contender("raw sqlite3 SELECT ... LIMIT 100", "list", raw_list("raw", select), prepare=draw("raw")),
        ]
        plan = " / ".join(str(row[-1]) for row in raw.execute(
            f"EXPLAIN QUERY PLAN {select}", ("in_progress", "user-0001", 0, 100, 0)))
        user_index = _index_on(raw, "user_id")
        if user_index is not None and user_index not in plan:  # what the planner left aside
            forced = select.replace("FROM sessions", f"FROM sessions INDEXED BY {user_index}")
            contenders.append(Contender(f"raw sqlite3, same SELECT INDEXED BY {user_index}", "list",
                                        raw_list("forced", forced), prepare=draw("forced")))
        # Round size from a trial: the plan SQLite picks decides whether a call takes 1 ms or 300 ms.
        per_round = calibrate(contenders[0], seconds=ctx.scale(1.0, 0.05), low=ctx.scale(5, 3), high=500)
        ctx.log(f"  {per_round} lists x {rounds} rounds")
        results = ctx.measure(contenders, per_round, rounds)
        if ctx.profile:
            section.profiles.append(profile_contender(contenders[0], per_round))

    ours = section.add(results[contenders[0].label])
    for contender in contenders[1:]:
        section.compare(ours, section.add(results[contender.label]), "latency")
    section.notes.append(f"Sessions returned per call: {sum(returned) / max(1, len(returned)):.1f} on average.")
    note = f"SQLite's plan for the query (the schema as migrated, no `ANALYZE` statistics): {plan}."
    if len(contenders) > 2:
        note += (" The `INDEXED BY` reference shows what the same query costs on the index that starts with "
                 "`user_id`, which the planner did not choose.")
    section.notes.append(note)
    return section


BENCHMARK = Benchmark(name="list", title="list with a filter on 1M sessions", run=run, order=50,
                      summary="manager.list(status, user_id, limit=100) on 1,000,000 SQLite sessions vs raw SELECT")
