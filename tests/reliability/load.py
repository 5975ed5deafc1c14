"""A bounded load run against the library: threads mixing creates, transitions, reads and expiries.

Run it with ``python -m tests.reliability.load [--url URL] [--threads N] [--operations N] [--seconds S]``
(the default URL starts a throwaway PostgreSQL). It prints throughput and latency percentiles, then checks
that no acknowledged event was lost, versions are contiguous and ``verify`` is clean; a failed check exits
non-zero. The test suite runs a short version (tests/reliability/test_load.py).
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from sessionflow import ConcurrencyConflict, InvalidTransition, SessionManager
from tests.reliability.checks import check_acknowledged, database


@dataclass
class LoadReport:
    operations: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    refusals: int = 0
    errors: list[str] = field(default_factory=list)
    sessions: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]

    def summary(self) -> str:
        rate = self.operations / self.seconds if self.seconds else 0.0
        return (f"{self.operations} operations in {self.seconds:.2f} s = {rate:.0f} ops/s; latency ms "
                f"p50 {self.percentile(0.50):.2f} p95 {self.percentile(0.95):.2f} p99 {self.percentile(0.99):.2f} "
                f"max {max(self.latencies_ms, default=0):.2f} (mean {statistics.fmean(self.latencies_ms or [0]):.2f}); "
                f"conflicts {self.conflicts}, refusals {self.refusals}, errors {len(self.errors)}; "
                f"{self.sessions} sessions, {self.events} events; problems {len(self.problems)}")


def run_load(manager: SessionManager, *, threads: int = 8, operations: int = 4000, seconds: float = 30.0,
             seed: int = 1) -> LoadReport:
    """Drive ``manager`` from ``threads`` threads until ``operations`` are done or ``seconds`` pass."""
    report = LoadReport()
    lock = threading.Lock()
    live: list[UUID] = []
    acked: Counter[UUID] = Counter()
    budget = iter(range(operations))
    deadline = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < deadline:
            with lock:
                if next(budget, None) is None:
                    return
                sid = rng.choice(live) if live else None
            roll = rng.random()
            kind = "create" if sid is None or roll < 0.15 else (
                "get" if roll < 0.45 else "list" if roll < 0.5 else "start" if roll < 0.6 else
                "note" if roll < 0.8 else "touch" if roll < 0.88 else "complete" if roll < 0.95 else "sweep")
            began = time.perf_counter()
            try:
                if kind == "create":
                    s = manager.create(user_id=f"u{rng.randint(1, 50)}", performer_id=f"t{n}",
                                       ttl=timedelta(seconds=rng.choice([1, 2, 3600])))
                    with lock:
                        live.append(s.id)
                        acked[s.id] += 1
                elif kind == "get":
                    manager.get(sid)
                elif kind == "list":
                    manager.list(user_id=f"u{rng.randint(1, 50)}", limit=20)
                elif kind == "sweep":
                    manager.expire_sessions()
                else:
                    assert sid is not None
                    if kind == "start":
                        manager.start(sid, performer_id=f"t{n}")
                    elif kind == "note":
                        manager.add_note(sid, file_path=f"f{n}", status="ok", performer_id=f"t{n}")
                    elif kind == "touch":
                        manager.touch(sid, performer_id=f"t{n}")
                    else:
                        manager.complete(sid, performer_id=f"t{n}")
                    with lock:
                        acked[sid] += 1
            except ConcurrencyConflict:
                with lock:
                    report.conflicts += 1
            except InvalidTransition:
                with lock:
                    report.refusals += 1
            except Exception as error:  # counted and reported: a load run must have none
                with lock:
                    report.errors.append(f"{kind}: {type(error).__name__}: {error}")
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                report.latencies_ms.append(elapsed)
                report.by_kind[kind] += 1
                report.operations += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    report.seconds = time.perf_counter() - started
    manager.expire_sessions()

    report.problems, report.events = check_acknowledged(manager, acked)
    report.sessions = len(acked)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--operations", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    with database(args.url) as url, SessionManager.open(url, pool_size=args.threads) as manager:
        report = run_load(manager, threads=args.threads, operations=args.operations, seconds=args.seconds)
    print(report.summary())
    for problem in report.problems[:20] + report.errors[:20]:
        print("  ", problem)
    return 1 if report.problems or report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
