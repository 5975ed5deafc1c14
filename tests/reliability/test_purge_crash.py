"""A purge killed with SIGKILL at random moments: every session is either whole in the store (perhaps archived
already) or archived whole and gone, never partly removed; a run to completion archives each exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from sessionflow import SessionEvent, SessionManager
from sessionflow.adapters.archive import read_archive
from sessionflow.testing import ManualClock

ROOT = Path(__file__).resolve().parents[2]
CLOSED = 240
KILLS = 4
CUTOFF = datetime(2021, 1, 1, tzinfo=UTC)


def _spawn(url: str, archive: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.purge_worker", url, str(archive),
                             CUTOFF.isoformat()], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _populate(url: str) -> tuple[dict[UUID, list[SessionEvent]], set[UUID]]:
    clock = ManualClock(datetime(2020, 1, 1, tzinfo=UTC))
    closed: dict[UUID, list[SessionEvent]] = {}
    live: set[UUID] = set()
    with SessionManager.open(url, clock=clock) as mgr:
        for i in range(CLOSED):
            s = mgr.create(user_id=f"u{i % 7}" if i % 5 else None, file_paths=["a.py"], performer_id="p")
            if i % 3 == 0:
                mgr.delete(s.id, performer_id="p")
            else:
                mgr.start(s.id, performer_id="p")
                mgr.fail(s.id, reason="r", performer_id="p")
            if i % 40 == 0:
                live.add(mgr.create(ttl=timedelta(days=3650), performer_id="p").id)
            clock.advance(timedelta(seconds=1))
        live.add(mgr.create(ttl=timedelta(days=3650), performer_id="p").id)  # holds the newest event
        closed = {h[0].session_id: h for h in mgr.store.histories() if h[0].session_id not in live}
    return closed, live


def _check(url: str, archive: Path, closed: dict[UUID, list[SessionEvent]], live: set[UUID]) -> int:
    """Every closed session whole in the store or whole in the archive; returns how many are gone."""
    files = list(read_archive(archive)) if archive.exists() else []
    counts = Counter(h[0].session_id for h in files)
    assert all(n == 1 for n in counts.values())
    archived = {h[0].session_id: h for h in files}
    gone = 0
    with SessionManager.open(url, cache_size=0, migrate=False) as mgr:
        store = mgr.store
        for sid, history in closed.items():
            projection, stored = store.read_together(sid)
            if stored:
                assert stored == history
                assert projection is not None
                assert projection.version == len(history)
            else:
                assert projection is None
                assert archived.get(sid) == history
                gone += 1
        for sid in live:
            assert store.read_together(sid)[0] is not None
        assert mgr.verify() == []
    return gone


def _purge_crashes(url: str, archive: Path) -> None:
    closed, live = _populate(url)
    rng = random.Random(7)
    gone = 0
    for _ in range(KILLS):
        proc = _spawn(url, archive)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "purging", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.02, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        now_gone = _check(url, archive, closed, live)
        assert now_gone >= gone
        gone = now_gone
    assert gone < len(closed)  # the kills did interrupt the purge
    proc = _spawn(url, archive)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _check(url, archive, closed, live) == len(closed)
    archived = [h[0].session_id for h in read_archive(archive)]
    assert sorted(archived) == sorted(closed)  # each exactly once


def test_sigkill_mid_purge_never_leaves_a_session_partly_removed(sql_url: str, tmp_path: Path) -> None:
    _purge_crashes(sql_url, tmp_path / "archive")
