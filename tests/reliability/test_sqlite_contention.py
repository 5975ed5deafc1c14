"""Heavy multi-process contention on one SQLite file: ``database is locked`` is waited out or becomes a typed
error — never a lost or half-written change."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from uuid import UUID

from sessionflow import SessionManager
from tests.integration import workers


def test_eight_processes_with_a_tiny_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'contended.db'}"
    SessionManager.open(url).close()
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(8) as pool:
        results = pool.starmap(workers.contend, [(url, 60, seed, 0.001, start_at) for seed in range(8)])
    acked = [(UUID(sid), version) for r in results for sid, version in r["acked"]]
    errors = [name for r in results for name in r["errors"]]
    assert set(errors) <= {"StoreError"}, errors  # typed, and only when retries ran out
    assert len(acked) >= 8 * 60, "locks should be waited out, not surface"
    with SessionManager.open(url, cache_size=0) as manager:
        for sid, version in acked:
            assert len(manager.history(sid)) >= version
        assert manager.verify() == []
