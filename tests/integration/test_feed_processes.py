"""The feed across processes: four writer processes and two consumer processes, one of them SIGKILLed and
restarted mid-run. Every event is handled at least once by each consumer, none is skipped, and every reader
sees positions strictly increasing."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from sessionflow import SessionManager

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
SESSIONS_PER_WRITER = 40


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.integration.feed_workers", *args], cwd=ROOT, env=env)


def _lines(path: Path) -> list[tuple[int, int, str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pid, position, record = line.split()
        rows.append((int(pid), int(position), record))
    return rows


def _wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_writers_and_consumers_in_processes_one_killed_and_restarted(sql_url: str, tmp_path: Path) -> None:
    SessionManager.open(sql_url).close()  # the schema, before the processes start
    outs = {name: tmp_path / f"{name}.log" for name in ("billing", "audit")}
    consumers = {name: _spawn("consumer", sql_url, name, str(out)) for name, out in outs.items()}
    writers = [_spawn("writer", sql_url, str(SESSIONS_PER_WRITER), f"w{i}") for i in range(WRITERS)]
    try:
        # Kill one consumer once it has handled some events but before the writers are done.
        _wait_for(lambda: len(_lines(outs["billing"])) >= 30, 60)
        consumers["billing"].send_signal(signal.SIGKILL)
        consumers["billing"].wait(10)
        killed_at = len(_lines(outs["billing"]))
        consumers["billing"] = _spawn("consumer", sql_url, "billing", str(outs["billing"]))
        for writer in writers:
            assert writer.wait(120) == 0
        with SessionManager.open(sql_url, migrate=False) as manager:
            feed = manager.events(limit=10_000)
            last = manager.last_position()
            _wait_for(lambda: all(manager.consumer_position(n) == last for n in outs), 60)
    finally:
        for process in [*consumers.values(), *writers]:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert len(feed) == WRITERS * SESSIONS_PER_WRITER * 3
    assert killed_at < len(feed)  # it was killed mid-run
    everything = {record for _p, _pos, record in ((0, e.position, str(e.record_id)) for e in feed)}
    for name, out in outs.items():
        lines = _lines(out)
        handled = {record for _pid, _pos, record in lines}
        assert handled == everything, f"{name} skipped {len(everything - handled)} events"
        runs: dict[int, list[int]] = defaultdict(list)
        for pid, position, _record in lines:
            runs[pid].append(position)
        for positions in runs.values():  # each process saw positions strictly increasing
            assert all(a < b for a, b in itertools.pairwise(positions))
    assert len({pid for pid, _p, _r in _lines(outs["billing"])}) == 2  # the killed run and its restart
