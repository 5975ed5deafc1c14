"""A process killed with SIGKILL mid-write or mid-sweep: every acknowledged change survives, nothing is torn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from sessionflow import EventType, SessionManager, SessionStatus, replay

ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.crash_worker", url, mode], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after_acks(proc: subprocess.Popen[str], acks: int, timeout: float = 60.0) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < acks and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # Anything printed before the kill was acknowledged too.
    rest = proc.stdout.read()
    lines.extend(x.strip() for x in rest.splitlines() if x.strip())
    return lines


def test_sigkill_mid_writes_loses_no_acknowledged_change(sql_url: str) -> None:
    SessionManager.open(sql_url).close()  # create the schema
    proc = _spawn(sql_url, "writes")
    lines = _kill_after_acks(proc, 300)
    acked = [(UUID(parts[1]), int(parts[2])) for parts in (x.split() for x in lines) if parts[0] == "ack"]
    assert len(acked) >= 300, proc.stderr.read() if proc.stderr else ""
    with SessionManager.open(sql_url, cache_size=0) as manager:
        for sid, version in acked:
            history = manager.history(sid)
            assert len(history) >= version
            assert [e.version for e in history] == list(range(1, len(history) + 1))
        assert manager.verify() == []
        for sid in {sid for sid, _ in acked}:
            assert replay(manager.history(sid)) == manager.get(sid)
        # The database is fully usable after the crash.
        s = manager.create(performer_id="after")
        assert manager.start(s.id, performer_id="after").version == 2


def test_sigkill_mid_sweep_then_restart_expires_each_session_exactly_once(sql_url: str) -> None:
    with SessionManager.open(sql_url) as manager:
        ids = [manager.create(performer_id="p", ttl=timedelta(minutes=1)).id for _ in range(3000)]
    proc = _spawn(sql_url, "sweep")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sweeping"
    time.sleep(0.15)  # let it commit some batches, then kill it mid-sweep
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with SessionManager.open(sql_url, cache_size=0) as manager:
        manager.expire_sessions(now=datetime(2100, 1, 1, tzinfo=UTC))
        assert manager.count(SessionStatus.EXPIRED) == len(ids)
        for sid in ids[:: max(1, len(ids) // 300)]:
            expired = [e for e in manager.history(sid) if e.event is EventType.EXPIRED]
            assert len(expired) == 1
            assert expired[0].performer_id == "system"
        assert manager.verify() == []
