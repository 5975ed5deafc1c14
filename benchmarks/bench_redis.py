"""The Redis store: the durable lifecycle against raw redis-py, SQLite FULL and PostgreSQL; a sweep of overdue
sessions; ``get`` latency.

* lifecycle: ``create`` + ``start`` + ``complete`` per session (``benchmarks/workload.py``), each step committed,
  on one thread: sessionflow on Redis with ``appendfsync always`` and ``everysec``; the ceiling, raw redis-py
  sending the very same commands (the store's append script, with arguments built by hand: no model, no
  lifecycle, no validation); sessionflow on SQLite ``synchronous=FULL`` and on PostgreSQL (the tests' throwaway
  server, durability switched off there: a lower bound of its cost).
* sweep: ``expire_sessions()`` of N overdue sessions (100 000 by default) in batches of 1000.
* get: the latency of ``get`` (a fresh read: one round trip, the cached session reused when unchanged).
* idempotency keys: the lifecycle with a key on each of its three writes (each looked up first, then stored by
  the write's own script, ``PX`` its window) against the same without keys, each on a server of its own with
  ``appendfsync always``.
* the replica wait: the lifecycle on a primary with one replica (both ``appendfsync always``), acknowledged once
  the replica has each write (``redis_wait_replicas=1``: ``WAIT`` after each write) against the same without it.

Each Redis contender runs on a ``redis-server`` of its own started here (AOF on, no RDB snapshots, data in a
temporary directory). ``make bench`` (``python -m benchmarks redis``) measures the lifecycle, the four Redis
contenders and SQLite FULL interleaved round by round; the sweep and ``get`` figures come from the standalone run,
``python -m benchmarks.bench_redis [--sessions N] [--sweep N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from benchmarks.framework import Benchmark, Contender, Context, Section, Target
from benchmarks.workload import METADATA, MODULE, TTL, WORKSPACE, SessionflowLifecycle, user_for
from sessionflow import SessionManager
from sessionflow.adapters.redis import scripts
from sessionflow.adapters.redis.keys import NO_KEY
from sessionflow.testing import ManualClock

__all__ = ["BENCHMARK", "main"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server(appendfsync: str, replica_of: str | None = None) -> Iterator[str]:
    """A throwaway ``redis-server`` with AOF (``appendfsync`` as given), a replica of the server at URL
    ``replica_of`` if given (then ready once it is in sync); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found (Debian: apt-get install redis-server)")
    root = Path(tempfile.mkdtemp(prefix="sessionflow-bench-redis-"))
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                                "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
                                "--logfile", str(root / "log"),
                                *(() if replica_of is None else
                                  ("--replicaof", "127.0.0.1", replica_of.rsplit(":", 1)[1].split("/")[0]))])
    try:
        client = redis.Redis(port=port)
        for _ in range(500):
            try:
                client.ping()
                if replica_of is None or client.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.01)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(root, ignore_errors=True)


class KeyedLifecycle:
    """``run(n)``: what :class:`SessionflowLifecycle` does, each of the three writes given an idempotency key of its
    own (a client's retry-safe writes: the key is looked up, then stored with the write)."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.count = 0

    def run(self, n: int) -> None:
        manager = self.manager
        create, start, complete = manager.create, manager.start, manager.complete
        for i in range(n):
            user = user_for(i)
            self.count += 1
            key = f"lifecycle-{self.count}"
            session = create(user_id=user, workspace_id=WORKSPACE, module_name=MODULE, metadata=METADATA,
                             ttl=TTL, performer_id=user, idempotency_key=key + "-create")
            start(session.id, performer_id=user, idempotency_key=key + "-start")
            complete(session.id, performer_id=user, idempotency_key=key + "-complete")


class RawRedisLifecycle:
    """The ceiling: the same append script, arguments built by hand (what any Redis-backed design would send)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.sha = self.client.script_load(scripts.APPLY)

    def _apply(self, sid: str, expected: int, doc: dict[str, Any], status: str, user: str, now: int, due: str,
               event: list[Any]) -> None:
        result = self.client.execute_command(  # type: ignore[no-untyped-call]
            "EVALSHA", self.sha, 0, "sessionflow:", "1", 1, sid, expected, json.dumps(doc, separators=(",", ":")),
            status, "=" + user, "=" + WORKSPACE, "=" + MODULE, "=session", doc["created_at"], due,
            doc["expires_at"], "", "", "", event[0], 1, *NO_KEY, json.dumps(event, separators=(",", ":")))
        if result[0] != 1:
            raise RuntimeError(f"raw append refused: {result}")

    def run(self, n: int) -> None:
        for i in range(n):
            user = user_for(i)
            sid = str(uuid.uuid4())
            now = int(time.time() * 1000)
            expires = now + int(TTL.total_seconds() * 1000)
            doc: dict[str, Any] = {
                "id": sid, "status": "pending", "version": 1, "user_id": user, "workspace_id": WORKSPACE,
                "module_name": MODULE, "total_files": 0, "processed_files": 0, "failed_files": 0,
                "current_file": None, "ttl_seconds": TTL.total_seconds(), "created_at": now, "updated_at": now,
                "expires_at": expires, "max_expires_at": None, "closed_at": None, "closed_by": None,
                "failure_reason": None, "deleted_at": None, "due_at": expires, "lifecycle": "session",
                "lifecycle_version": 1, "data": {"file_paths": [], "file_results": [], "notes": [],
                                                 "metadata": METADATA}}
            self._apply(sid, 0, doc, "pending", user, now, str(expires),
                        [str(uuid.uuid4()), 1, "created", None, "pending", user, now, {}])
            doc.update(status="in_progress", version=2)
            self._apply(sid, 1, doc, "in_progress", user, now, str(expires),
                        [str(uuid.uuid4()), 2, "started", "pending", "in_progress", user, now, {}])
            doc.update(status="completed", version=3, closed_at=now, closed_by=user, due_at=None)
            self._apply(sid, 2, doc, "completed", user, now, "",
                        [str(uuid.uuid4()), 3, "completed", "in_progress", "completed", user, now, {}])


def _rate(run: Callable[[int], None], n: int, rounds: int) -> float:
    """The best of ``rounds`` runs of ``n`` lifecycles, in lifecycles per second."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - started)
    return n / best


def lifecycle(n: int, rounds: int, postgres: str | None, workdir: Path) -> dict[str, float]:
    rates: dict[str, float] = {}
    for level in ("always", "everysec"):
        # Three servers (one each), the contenders interleaved round by round: a busy machine slows all alike.
        with contextlib.ExitStack() as servers:
            manager = servers.enter_context(SessionManager.open(servers.enter_context(redis_server(level))))
            keyed = servers.enter_context(SessionManager.open(servers.enter_context(redis_server(level))))
            raw = RawRedisLifecycle(servers.enter_context(redis_server(level)))
            servers.callback(raw.client.close)
            runs = {"ours": SessionflowLifecycle(manager).run, "keyed": KeyedLifecycle(keyed).run, "raw": raw.run}
            for run in runs.values():
                run(50)  # warm-up
            best = dict.fromkeys(runs, float("inf"))
            for _ in range(rounds):
                for name, run in runs.items():
                    started = time.perf_counter()
                    run(n)
                    best[name] = min(best[name], time.perf_counter() - started)
            rates[f"sessionflow redis {level}"] = n / best["ours"]
            rates[f"sessionflow redis {level}, keys"] = n / best["keyed"]
            rates[f"raw redis-py {level}"] = n / best["raw"]
    full_n = max(10, n // 10)  # fsync per commit: a slower contender, fewer sessions
    with SessionManager.open(f"sqlite:///{workdir / 'full.db'}", sqlite_synchronous="FULL") as manager:
        runner = SessionflowLifecycle(manager)
        runner.run(10)
        rates["sessionflow sqlite FULL"] = _rate(runner.run, full_n, rounds)
    if postgres is not None:
        with SessionManager.open(postgres) as manager:
            runner = SessionflowLifecycle(manager)
            runner.run(50)
            rates["sessionflow postgresql"] = _rate(runner.run, n, rounds)
    return rates


class _Gets:
    """``run(n)``: ``n`` reads of sessions already stored, by sessionflow's ``get`` or by raw redis-py's ``HGET`` of
    the same document (the ceiling: no decoding into a model)."""

    def __init__(self, manager: SessionManager, url: str, count: int) -> None:
        self.manager = manager
        self.ids = [manager.create(performer_id="p", metadata=METADATA).id for _ in range(count)]
        self.client = redis.Redis.from_url(url)
        self.keys = [f"sessionflow:s:{sid}" for sid in self.ids]

    def ours(self, n: int) -> None:
        get, ids = self.manager.get, self.ids
        for i in range(n):
            get(ids[i % len(ids)])

    def raw(self, n: int) -> None:
        hget, keys = self.client.hget, self.keys
        for i in range(n):
            if hget(keys[i % len(keys)], "doc") is None:
                raise RuntimeError("raw HGET found no session")


def run(ctx: Context) -> Section:
    """The lifecycle on Redis (AOF ``always`` and ``everysec``) against raw redis-py sending the same commands,
    SQLite FULL and PostgreSQL, in one interleaved measurement; ``get`` against a raw ``HGET``; a sweep."""
    section = Section(name="redis", title="Durable lifecycle, Redis", description=__doc__ or "")
    rounds = ctx.scale(7, 2)
    n = ctx.scale(1000, 50)
    with contextlib.ExitStack() as stack:
        contenders: list[Contender] = []
        pairs: list[tuple[str, str]] = []
        urls: dict[str, str] = {}
        for level in ("always", "everysec"):
            ours_url = urls[level] = stack.enter_context(redis_server(level))
            raw_url = stack.enter_context(redis_server(level))
            manager = stack.enter_context(SessionManager.open(ours_url))
            ours = SessionflowLifecycle(manager)
            raw = RawRedisLifecycle(raw_url)
            stack.callback(raw.client.close)
            mine, theirs = f"sessionflow, Redis appendfsync {level}", f"raw redis-py, Redis appendfsync {level}"
            contenders += [Contender(mine, "session", ours.run, profile=level == "always"),
                           Contender(theirs, "session", raw.run)]
            pairs.append((mine, theirs))
        # Idempotency keys' cost: the same lifecycle with a key on each write, on a server of its own.
        keyed_manager = stack.enter_context(SessionManager.open(stack.enter_context(redis_server("always"))))
        keyed_label = "sessionflow, Redis appendfsync always, idempotency keys"
        contenders.append(Contender(keyed_label, "session", KeyedLifecycle(keyed_manager).run))
        # The replica wait's cost: one primary (appendfsync always) with a replica, a manager that waits for it
        # and one that does not, on their own key prefixes.
        primary = stack.enter_context(redis_server("always"))
        stack.enter_context(redis_server("always", replica_of=primary))
        waiting = stack.enter_context(SessionManager.open(primary, redis_prefix="w:", redis_wait_replicas=1))
        alone = stack.enter_context(SessionManager.open(primary, redis_prefix="n:"))
        wait_pair = ("sessionflow, Redis with a replica, redis_wait_replicas=1",
                     "sessionflow, Redis with a replica, no wait")
        contenders += [Contender(wait_pair[0], "session", SessionflowLifecycle(waiting).run),
                       Contender(wait_pair[1], "session", SessionflowLifecycle(alone).run)]
        sqlite = stack.enter_context(SessionManager.open(f"sqlite:///{ctx.workdir / 'redis-vs-full.db'}",
                                                         sqlite_synchronous="FULL"))
        contenders.append(Contender("sessionflow, SQLite FULL", "session", SessionflowLifecycle(sqlite).run))
        postgres = stack.enter_context(SessionManager.open(stack.enter_context(
            ctx.postgres.fresh_database("sfbench_redis"))))
        contenders.append(Contender("sessionflow, PostgreSQL", "session", SessionflowLifecycle(postgres).run))
        ctx.log(f"  lifecycle on Redis, SQLite FULL and PostgreSQL: {n} sessions x {rounds} rounds")
        results = ctx.measure(contenders, n, rounds)
        gets = _Gets(stack.enter_context(SessionManager.open(urls["always"])), urls["always"], ctx.scale(1000, 50))
        stack.callback(gets.client.close)
        get_contenders = [Contender("sessionflow get, Redis", "get", gets.ours, profile=True),
                          Contender("raw redis-py HGET of the same document", "get", gets.raw)]
        get_n = ctx.scale(5000, 200)
        ctx.log(f"  get: {get_n} reads x {rounds} rounds")
        get_results = ctx.measure(get_contenders, get_n, rounds)
    measured = {c.label: section.add(results[c.label], "throughput") for c in contenders}
    for mine, theirs in pairs:
        section.compare(measured[mine], measured[theirs], "throughput", Target(">=", 0.7, "Redis issue"))
    section.compare(measured[wait_pair[0]], measured[wait_pair[1]], "throughput")
    section.compare(measured[keyed_label], measured[pairs[0][0]], "throughput")
    for other in ("sessionflow, SQLite FULL", "sessionflow, PostgreSQL"):
        section.compare(measured[pairs[0][0]], measured[other], "throughput")
    got = {c.label: section.add(get_results[c.label], "latency") for c in get_contenders}
    section.compare(got["sessionflow get, Redis"], got["raw redis-py HGET of the same document"], "latency")
    count = ctx.scale(100_000, 500)
    ctx.log(f"  sweep: {count:,} overdue sessions")
    swept = sweep(count, "everysec")
    section.notes.append(f"Sweep (appendfsync everysec): {count:,} overdue sessions expired by expire_sessions() "
                         f"in batches of 1,000 in {swept['seconds']:.1f} s, {swept['per_second']:,.0f} "
                         "sessions/s (one run; the sessions were created through the manager beforehand).")
    section.notes.append("The raw contender sends the store's own append script (one EVALSHA per step) with its "
                         "arguments built by hand: no model, no lifecycle, no validation. With appendfsync always "
                         "every step waits for Redis's fsync, as SQLite FULL waits for its own; the PostgreSQL "
                         f"server is {ctx.postgres.origin}.")
    return section


def sweep(count: int, level: str = "always") -> dict[str, float]:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    clock = ManualClock(t0)
    with redis_server(level) as url, SessionManager.open(url, clock=clock, cache_size=0) as manager:
        started = time.perf_counter()
        for _ in range(count):
            manager.create(performer_id="p", ttl=timedelta(minutes=1))
        setup = time.perf_counter() - started
        clock.advance(timedelta(minutes=2))
        started = time.perf_counter()
        expired = manager.expire_sessions(batch_size=1000)
        took = time.perf_counter() - started
        assert expired == count, expired
        return {"sessions": count, "seconds": took, "per_second": count / took, "setup_seconds": setup}


def get_latency(samples: int, level: str = "always") -> dict[str, float]:
    with redis_server(level) as url, SessionManager.open(url) as manager:
        ids = [manager.create(performer_id="p", metadata=METADATA).id for _ in range(1000)]
        timings = []
        for i in range(samples):
            sid = ids[i % len(ids)]
            started = time.perf_counter()
            manager.get(sid)
            timings.append(time.perf_counter() - started)
        timings.sort()
        return {"median_us": statistics.median(timings) * 1e6, "p99_us": timings[int(len(timings) * 0.99)] * 1e6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--sweep", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gets", type=int, default=20_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sessionflow-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            postgres = None
            if not args.no_postgres:
                from tests.support.postgres import PostgresUnavailable, throwaway_postgres

                try:
                    postgres = stack.enter_context(throwaway_postgres())
                except PostgresUnavailable as error:
                    print(f"PostgreSQL skipped: {error}")
            rates = lifecycle(args.sessions, args.rounds, postgres, workdir)
        print("lifecycle (create + start + complete), one thread, best of", args.rounds, "rounds:")
        for name, rate in rates.items():
            print(f"  {name:<36} {rate:9.0f} lifecycles/s")
        for level in ("always", "everysec"):
            ratio = rates[f"sessionflow redis {level}"] / rates[f"raw redis-py {level}"]
            print(f"  sessionflow / raw redis-py ({level}): {ratio:.2f}x (target >= 0.7x)")
            keyed = rates[f"sessionflow redis {level}, keys"] / rates[f"sessionflow redis {level}"]
            print(f"  sessionflow with keys / without ({level}): {keyed:.2f}x")
        print(f"sweep of {args.sweep} overdue sessions (AOF always):", json.dumps(sweep(args.sweep)))
        print("get latency (AOF always):", json.dumps(get_latency(args.gets)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


BENCHMARK = Benchmark(name="redis", title="Durable lifecycle, Redis", run=run, order=32, needs_postgres=True,
                      summary="create+start+complete on Redis (AOF always and everysec) vs raw redis-py and SQLite "
                              "FULL")


if __name__ == "__main__":
    main()

