"""Cross-process expiry lateness: sessions created by one process, expired by another process's waker.

Process A runs a manager with its default waker started (``start_timeouts()``, a safety-net sweep every
300 s, so the safety net never fires during a trial) and subscribes to the ``expired`` events; it notes the
wall-clock time at which each one is delivered (after its transaction committed). Process B, a separate
Python process, creates sessions at a steady rate on the same database. A learns of B's deadlines only
through the store's change watcher: PostgreSQL's ``NOTIFY`` (sent by the triggers of migration 0004) or, on
SQLite, its poll of ``PRAGMA data_version`` every 100 ms. The lateness of an expiry is the time A delivered
it minus the deadline (as stored, in milliseconds); the event's own timestamp (when the sweep that expired it
began) minus the deadline is shown too.

Two kinds of deadline:

* TTL 1 s (the smallest TTL a session may have): the deadline is a second after B's commit, so the notice has
  long arrived when it falls, and A's lateness is that of its waker alone.
* 50 ms after the commit (B's clock is set back, so a 1 s TTL ends 50 ms after the write): the notice itself
  is on the critical path; on SQLite the polling interval shows.

Reference, measured in the same run under the same conditions: the in-process path, where the same process
(a fresh one) creates the sessions and its manager tells its waker each deadline directly. Without the
watchers, a deadline written by another process waited for the safety-net sweep: up to the cleanup interval,
300 s by default (a stated figure, not measured).

Each trial runs in fresh Python processes; A's process and B's are started for the trial and stopped after.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_expiry_lateness import percentile
from benchmarks.environment import load_average
from benchmarks.framework import Benchmark, Context, Measurement, Section, Skipped
from sessionflow import SessionManager
from sessionflow.domain.models import EventType

__all__ = ["BENCHMARK", "create_sessions", "expire_sessions"]

ROOT = Path(__file__).resolve().parents[1]
_CLEANUP = timedelta(minutes=5)
_TTL = timedelta(seconds=1)
#: The kinds of deadline: how long after its commit a session falls due.
_LEADS = {"TTL 1 s": 1.0, "due 50 ms after the commit": 0.05}
#: p99 targets of cross-process lateness (seconds).
_TARGETS = {"PostgreSQL": 0.050, "SQLite": 1.0}
_URL_VARIABLE = "SESSIONFLOW_BENCH_TRIAL_URL"  # the database of a trial (not on the command line)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _ShiftedClock:
    """The real clock moved by a fixed offset (to write deadlines closer than the smallest TTL)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _millis(value: datetime | None) -> float:
    assert value is not None
    return (value - _EPOCH) // timedelta(milliseconds=1) / 1000


def create_sessions(manager: SessionManager, n: int, spread: float) -> dict[str, float]:
    """Create ``n`` sessions evenly over ``spread`` seconds; their deadlines (epoch seconds) by id."""
    deadlines: dict[str, float] = {}
    start = time.monotonic()
    for i in range(n):
        delay = start + spread * i / n - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        session = manager.create(user_id="lateness", workspace_id="bench", module_name="cross-process", ttl=_TTL,
                                 performer_id="lateness")
        deadlines[str(session.id)] = _millis(session.expires_at)
    return deadlines


def _clock(lead: float) -> _ShiftedClock | None:
    return None if lead >= _TTL.total_seconds() else _ShiftedClock(timedelta(seconds=lead) - _TTL)


def expire_sessions(url: str, n: int, spread: float, lead: float, *, in_process: bool) -> dict[str, Any]:
    """Process A: run the waker until ``n`` sessions expired (created by process B, or here when
    ``in_process``); the delivery time and the event timestamp of each expiry, and the deadlines if created here."""
    delivered: dict[str, float] = {}
    stamped: dict[str, float] = {}
    done = threading.Event()

    def on_event(event: Any) -> None:
        if event.event is EventType.EXPIRED:
            delivered[str(event.session_id)] = time.time()
            stamped[str(event.session_id)] = event.timestamp.timestamp()
            if len(delivered) >= n:
                done.set()

    deadlines: dict[str, float] = {}
    with SessionManager.open(url, migrate=False) as manager:
        manager.subscribe(on_event)
        waker = manager.start_timeouts(cleanup_interval=_CLEANUP)
        watcher = getattr(waker, "watcher", None)
        if watcher is not None:
            watcher.wait_listening(10)
        with contextlib.ExitStack() as writers:
            if in_process:
                # A second manager of this process sharing the waker (a shifted clock for the close deadlines):
                # each write tells the waker its deadline directly, as the in-process path does. Closed after
                # the waker stopped (closing a manager stops its waker).
                writer = SessionManager.open(url, migrate=False, clock=_clock(lead), waker=waker)
                writers.callback(writer.close)
                deadlines = create_sessions(writer, n, spread)
            else:
                print("ready", flush=True)
            done.wait(spread + 30)
            manager.stop_timeouts()
    return {"delivered": delivered, "stamped": stamped, "deadlines": deadlines}


def _python(*args: str, url: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env[_URL_VARIABLE] = url
    return subprocess.Popen([sys.executable, "-m", "benchmarks.bench_cross_process_lateness", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def trial(url: str, n: int, spread: float, lead: float, *, in_process: bool) -> tuple[list[float], list[float]]:
    """One trial in fresh processes; the lateness of each expiry (at delivery, by the event's timestamp)."""
    mode = "in-process" if in_process else "cross-process"
    waker = _python("waker", str(n), str(spread), str(lead), mode, url=url)
    try:
        if in_process:
            result = _finish(waker, "the waker process")
            deadlines: dict[str, float] = result["deadlines"]
        else:
            assert waker.stdout is not None
            line = waker.stdout.readline()
            if line.strip() != "ready":
                waker.kill()
                raise RuntimeError(f"the waker process did not start: {line!r} {waker.communicate()[1][-3000:]}")
            deadlines = _finish(_python("creator", str(n), str(spread), str(lead), url=url), "the creator process")
            result = _finish(waker, "the waker process")
    finally:
        if waker.poll() is None:
            waker.kill()
            waker.wait()
    delivered: dict[str, float] = result["delivered"]
    stamped: dict[str, float] = result["stamped"]
    missing = set(deadlines) - set(delivered)
    if missing:
        raise AssertionError(f"{len(missing)} of {n} sessions were not expired by the waker in time ({mode})")
    return ([delivered[s] - d for s, d in deadlines.items()], [stamped[s] - d for s, d in deadlines.items()])


def main(argv: Sequence[str]) -> None:
    kind, n, spread, lead, *rest = argv
    url = os.environ[_URL_VARIABLE]
    if kind == "creator":
        with SessionManager.open(url, migrate=False, clock=_clock(float(lead))) as manager:
            print(json.dumps(create_sessions(manager, int(n), float(spread))))
        return
    result = expire_sessions(url, int(n), float(spread), float(lead), in_process=rest == ["in-process"])
    print(json.dumps(result))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def run(ctx: Context) -> Section:
    title = "Cross-process expiry lateness"
    section = Section(name="cross-process-lateness", title=title, description=__doc__ or "")
    n = ctx.scale(200, 20)
    spread = ctx.scale(4.0, 0.5)
    loads = [load_average()]
    results: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
    with contextlib.ExitStack() as stack:
        urls = {"SQLite": f"sqlite:///{ctx.workdir / 'cross-process.db'}"}
        try:
            urls["PostgreSQL"] = stack.enter_context(ctx.postgres.fresh_database("sfbench_cross"))
        except Skipped as skipped:
            section.notes.append(f"PostgreSQL not run: {skipped}")
        for db, url in urls.items():
            SessionManager.open(url).close()  # the schema, once
            for condition, lead in _LEADS.items():
                for path in ("cross-process", "in-process"):
                    latenesses = trial(url, n, spread, lead, in_process=path == "in-process")
                    results[(db, condition, path)] = latenesses
                    ctx.log(f"    {db}, {condition}, {path}: p50 {_ms(percentile(latenesses[0], 50))}, "
                            f"p99 {_ms(percentile(latenesses[0], 99))}, max {_ms(max(latenesses[0]))}")
                loads.append(load_average())

    rows = ["| Store | Deadline | Path | p50 | p99 | max | p99 by the event's timestamp |",
            "|---|---|---|---|---|---|---|"]
    figure: dict[str, dict[str, float]] = {}
    p99s: dict[tuple[str, str, str], Measurement] = {}
    for (db, condition, path), (values, stamped) in results.items():
        p50, p99, worst = percentile(values, 50), percentile(values, 99), max(values)
        rows.append(f"| {db} | {condition} | {path} | {_ms(p50)} | {_ms(p99)} | {_ms(worst)} | "
                    f"{_ms(percentile(stamped, 99))} |")
        figure[f"{db}, {condition}, {path}"] = {"p50": p50, "p99": p99, "max": worst}
        measurement = Measurement(f"{db}, {condition}, {path}: p99 lateness", "", (p99,), ops_per_round=n)
        p99s[(db, condition, path)] = section.add(measurement)
    rows.append(f"| any | any | cross-process, without a change watcher (stated, not measured) | | | up to "
                f"{_CLEANUP.total_seconds():.0f} s (the cleanup interval) | |")
    section.blocks.append(f"Lateness of {n:,} expiries per trial:\n\n" + "\n".join(rows))
    section.figures["lateness"] = figure
    for (db, condition, path), measurement in p99s.items():
        if path == "cross-process":
            section.goal(measurement, "<=", _TARGETS[db], "cross-process wake-ups", note="an absolute target")
            section.compare(measurement, p99s[(db, condition, "in-process")], "latency")
    section.notes.append(f"{n:,} sessions created {spread / n * 1000:.0f} ms apart by process B; lateness is the "
                         "wall-clock time at which process A's subscriber received the committed `expired` event "
                         "minus the stored deadline. Targets: p99 ≤ 50 ms on PostgreSQL, ≤ 1 s on SQLite.")
    section.notes.append("Load average (1 min) at the start and after each store's trials: "
                         + " / ".join(f"{x:.2f}" for x in loads))
    return section


BENCHMARK = Benchmark(name="cross-process-lateness", title="Cross-process expiry lateness", run=run, order=55,
                      summary="deadline to committed expired event for sessions created by another process, "
                              "p50/p99/max, SQLite and PostgreSQL, beside the in-process path")


if __name__ == "__main__":
    main(sys.argv[1:])
