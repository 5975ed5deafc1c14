"""Failovers and several hosts: how long writers take to resume after the primary is lost, and what a second host
adds on one PostgreSQL.

* PostgreSQL failover: a primary and its synchronous streaming standby (``tests/support/postgres_pair.py``), two
  writer threads creating sessions through the multi-host URL (``target_session_attrs=read-write``,
  ``retries=3``); the primary is SIGKILLed and the standby promoted at once (``pg_ctl promote``, as a failover
  manager would). The time to resume is from the kill (and from the end of the promotion) to the moment both
  writers have had a write begun after the kill acknowledged. A fresh pair per run.
* Redis Sentinel failover: a primary, its replica and three Sentinels (``tests/support/sentinel.py``: quorum 2,
  ``down-after-milliseconds 1000``), two writer threads creating sessions through ``redis+sentinel://``
  (``redis_retries=60``, a 2 s socket timeout); the primary is SIGKILLed and the Sentinels promote the replica.
  The time to resume is from the kill to the moment both writers have had a write begun after it acknowledged:
  it is mostly the Sentinels' detection (the down-after period) and election. A fresh setup per run.
* Two "hosts" against one on one PostgreSQL: each host a ``sessionflow serve`` and a ``sessionflow worker``
  (``tests/support/hosts.py``); HTTP clients (threads of this process, each with its own keep-alive connections)
  run the lifecycle (``POST /sessions``, ``/start``, ``/complete``) for a fixed time through one host's port, or
  alternating between the two hosts' ports request by request; the two contenders interleaved round by round.

Every process shares this machine's cores with the database servers and the clients: the figures show what a
second host adds on one machine, a lower bound of what it adds on its own one.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.framework import Benchmark, Context, Measurement, Section, Skipped
from sessionflow import SessionManager
from sessionflow.errors import SessionflowError

__all__ = ["BENCHMARK"]

WRITERS = 2
CLIENTS = 8


class _Writers:
    """Threads creating sessions on ``open_manager()``'s managers until stopped; when each write began and, if
    acknowledged, ended."""

    def __init__(self, open_manager: Callable[[], SessionManager]) -> None:
        self.acknowledged: list[list[tuple[float, float]]] = [[] for _ in range(WRITERS)]
        self._stop = threading.Event()
        self._managers = [open_manager() for _ in range(WRITERS)]
        self._threads = [threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(WRITERS)]
        for thread in self._threads:
            thread.start()

    def _write(self, number: int) -> None:
        manager = self._managers[number]
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                manager.create(performer_id="bench")
            except SessionflowError:  # refused or unknown while the primary is gone
                self._stop.wait(0.02)
                continue
            self.acknowledged[number].append((began, time.monotonic()))

    def resumed(self, after: float) -> float | None:
        """When the last writer had its first write begun after ``after`` acknowledged (None: not all yet)."""
        firsts = [next((ended for began, ended in writes if began >= after), None) for writes in self.acknowledged]
        return None if None in firsts else max(f for f in firsts if f is not None)

    def wait_resumed(self, after: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while (resumed := self.resumed(after)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the writers did not resume within {timeout} s")
            time.sleep(0.01)
        return resumed

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        for manager in self._managers:
            with contextlib.suppress(Exception):
                manager.close()


@contextlib.contextmanager
def _writing(open_manager: Callable[[], SessionManager]) -> Iterator[_Writers]:
    writers = _Writers(open_manager)
    try:
        yield writers
    finally:
        writers.close()


def postgres_resume() -> tuple[float, float]:
    """One PostgreSQL failover: seconds from the kill, and from the end of the promotion, to both writers
    resumed."""
    from tests.support.postgres import PostgresUnavailable
    from tests.support.postgres_pair import postgres_pair

    try:
        pair_context = postgres_pair()
        pair = pair_context.__enter__()
    except PostgresUnavailable as error:
        raise Skipped(f"no PostgreSQL pair: {error}") from None
    try:
        SessionManager.open(pair.url).close()
        with _writing(lambda: SessionManager.open(pair.url, retries=3)) as writers:
            writers.wait_resumed(time.monotonic(), timeout=30)
            time.sleep(0.5)
            pair.kill_primary()
            killed = time.monotonic()
            pair.promote()
            promoted = time.monotonic()
            resumed = writers.wait_resumed(killed, timeout=60)
    finally:
        pair_context.__exit__(None, None, None)
    return resumed - killed, resumed - promoted


def redis_resume() -> float:
    """One Redis Sentinel failover: seconds from the kill to both writers resumed."""
    from tests.support.redis import RedisUnavailable
    from tests.support.sentinel import sentinel_setup

    options: dict[str, Any] = {"redis_prefix": "b:", "redis_retries": 60, "redis_socket_timeout": 2.0}
    try:
        setup_context = sentinel_setup()
        setup = setup_context.__enter__()
    except RedisUnavailable as error:
        raise Skipped(f"no Redis: {error}") from None
    try:
        with _writing(lambda: SessionManager.open(setup.url, **options)) as writers:
            writers.wait_resumed(time.monotonic(), timeout=30)
            time.sleep(0.5)
            setup.primary.kill()
            killed = time.monotonic()
            resumed = writers.wait_resumed(killed, timeout=60)
    finally:
        setup_context.__exit__(None, None, None)
    return resumed - killed


class _HttpLoad:
    """HTTP clients running the lifecycle through the given hosts' ports (request by request in turn)."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = bases
        self.lifecycles = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def run(self, seconds: float) -> float:
        """Run for ``seconds``; seconds per lifecycle."""
        self.lifecycles = 0
        stop = threading.Event()
        threads = [threading.Thread(target=self._client, args=(n, stop), daemon=True) for n in range(CLIENTS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
        took = time.perf_counter() - started
        if self.errors:
            raise RuntimeError(f"the load failed: {self.errors[:5]}")
        if not self.lifecycles:
            raise RuntimeError("no lifecycle completed")
        return took / self.lifecycles

    def _client(self, number: int, stop: threading.Event) -> None:
        turn = number
        with httpx.Client(timeout=30) as client:

            def post(path: str, body: dict[str, object]) -> httpx.Response:
                nonlocal turn
                response = client.post(f"{self.bases[turn % len(self.bases)]}{path}", json=body)
                turn += 1
                if response.status_code >= 300:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text}")
                return response

            try:
                while not stop.is_set():
                    user = f"load-{number}"
                    sid = post("/sessions", {"performer_id": user, "user_id": user}).json()["id"]
                    post(f"/sessions/{sid}/start", {"performer_id": user})
                    post(f"/sessions/{sid}/complete", {"performer_id": user})
                    with self._lock:
                        self.lifecycles += 1
            except Exception as error:  # reported by run()
                self.errors.append(repr(error))


def hosts_throughput(ctx: Context, url: str, workdir: Path) -> dict[str, tuple[float, ...]]:
    """Seconds per lifecycle through one host and through two, interleaved round by round."""
    from tests.support.hosts import running_hosts

    seconds = ctx.scale(8.0, 1.0)
    rounds = ctx.scale(3, 1)
    SessionManager.open(url).close()  # the schema, once, before the hosts start
    samples: dict[str, list[float]] = {"1 host": [], "2 hosts": []}
    with running_hosts(2, url, workdir, worker_interval="30s") as hosts:
        loads = {"1 host": _HttpLoad([hosts[0].base]), "2 hosts": _HttpLoad([h.base for h in hosts])}
        _HttpLoad([h.base for h in hosts]).run(min(seconds, 1.0))  # warm-up: connections, caches
        for index in range(rounds):
            for label in (list(loads) if index % 2 == 0 else list(reversed(loads))):
                samples[label].append(loads[label].run(seconds))
                ctx.log(f"  {label}: {1 / samples[label][-1]:.0f} lifecycles/s")
    return {label: tuple(values) for label, values in samples.items()}


def run(ctx: Context) -> Section:
    """Resume times after a PostgreSQL and a Redis failover; the lifecycle through two hosts against one."""
    section = Section(name="failover", title="Failovers and several hosts", description=__doc__ or "")
    runs = ctx.scale(5, 1)
    ctx.log(f"  PostgreSQL failover: {runs} runs")
    pg: list[tuple[float, float]] = []
    for _ in range(runs):
        pg.append(postgres_resume())
        ctx.log(f"    resumed {pg[-1][0]:.3f} s after the kill, {pg[-1][1]:.3f} s after the promotion")
    ctx.log(f"  Redis Sentinel failover: {runs} runs")
    redis_list: list[float] = []
    for _ in range(runs):
        redis_list.append(redis_resume())
        ctx.log(f"    resumed {redis_list[-1]:.3f} s after the kill")
    redis_times = tuple(redis_list)
    with ctx.postgres.fresh_database("sfbench_failover") as url:
        ctx.log("  lifecycle through 1 host and 2 hosts")
        throughput = hosts_throughput(ctx, url, ctx.workdir / "hosts")
    from_kill = section.add(Measurement("PostgreSQL failover: resumed after the kill", "", tuple(t[0] for t in pg),
                                        ops_per_round=WRITERS, threads=WRITERS))
    redis_resumed = section.add(Measurement("Redis Sentinel failover: resumed after the kill", "", redis_times,
                                            ops_per_round=WRITERS, threads=WRITERS))
    one = section.add(Measurement("1 host (serve + worker) on one PostgreSQL", "lifecycle",
                                  throughput["1 host"], threads=CLIENTS), "throughput")
    two = section.add(Measurement("2 hosts (serve + worker each) on one PostgreSQL", "lifecycle",
                                  throughput["2 hosts"], threads=CLIENTS), "throughput")
    section.compare(two, one, "throughput")
    section.compare(from_kill, redis_resumed, "latency",
                    note="PostgreSQL promoted at once, against the Sentinels' own detection and election")
    for measurement in (from_kill, redis_resumed):
        section.notes.append(f"{measurement.label}: p50 {statistics.median(measurement.samples):.2f} s, max "
                             f"{max(measurement.samples):.2f} s over {len(measurement.samples)} runs.")
    # (a note, not a measurement: the writers may resume before ``pg_ctl promote`` returns, a time below zero)
    after = [t[1] for t in pg]
    section.notes.append(f"PostgreSQL failover: resumed after pg_ctl promote returned: p50 "
                         f"{statistics.median(after):.2f} s, max {max(after):.2f} s over {len(after)} runs "
                         "(below zero: the writers resumed before the command returned).")
    section.notes.append(f"Lifecycles (create + start + complete over HTTP, {CLIENTS} client threads): 1 host "
                         f"{1 / one.median:.0f}/s, 2 hosts {1 / two.median:.0f}/s (median of "
                         f"{len(one.samples)} rounds); the PostgreSQL server is {ctx.postgres.origin}.")
    for note in section.notes:
        ctx.log(f"  {note}")
    return section


BENCHMARK = Benchmark(name="failover", title="Failovers and several hosts", run=run, order=96, needs_postgres=True,
                      summary="time to resume after a PostgreSQL and a Redis Sentinel failover (p50/max of 5 runs); "
                              "the lifecycle through 2 hosts vs 1 on one PostgreSQL")
