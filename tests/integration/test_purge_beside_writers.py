"""Purge beside running writers and a sweeper, on SQLite and PostgreSQL: writer threads keep creating, starting,
completing, failing and deleting sessions (and letting some expire), a sweeper thread expires the overdue ones,
and purges with small batches run meanwhile. Afterwards: every acknowledged session that is gone was closed
before the purge's cutoff, every other one is whole, the projection agrees with the events, and the feed never
handed out a position twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from sessionflow import InvalidTransition, SessionManager, SessionNotFound, StoreError
from sessionflow.adapters.archive import read_archive

WRITERS = 3
ROUNDS = 40


@pytest.mark.parametrize("sql_backend", ["sqlite", "postgres"])
def test_purge_beside_writers_and_a_sweeper(sql_url: str, tmp_path: Path) -> None:
    mgr = SessionManager.open(sql_url, pool_size=WRITERS + 3)
    stop = threading.Event()
    written: list[UUID] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        try:
            for i in range(ROUNDS):
                ttl = timedelta(seconds=1) if i % 5 == 0 else timedelta(hours=1)
                s = mgr.create(user_id=f"u{n}", performer_id=f"u{n}", ttl=ttl)
                with lock:
                    written.append(s.id)
                stop.wait(0.03)  # the writers run for over a second: the first sessions left to expire do
                if i % 5 == 0:
                    continue  # left to expire
                try:
                    mgr.start(s.id, performer_id=f"u{n}")
                    if i % 3 == 0:
                        mgr.fail(s.id, reason="stop", performer_id=f"u{n}")
                    else:
                        mgr.complete(s.id, performer_id=f"u{n}")
                    if i % 4 == 0:
                        mgr.delete(s.id, performer_id=f"u{n}")
                except (InvalidTransition, SessionNotFound):
                    pass
        except BaseException as error:
            errors.append(error)

    def sweeper() -> None:
        try:
            while not stop.is_set():
                mgr.expire_sessions()
                stop.wait(0.02)
        except BaseException as error:
            errors.append(error)

    purged = 0
    cutoffs: list[datetime] = []
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    sweeping = threading.Thread(target=sweeper)
    with mgr:
        for thread in (*threads, sweeping):
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                cutoff = datetime.now(UTC)
                cutoffs.append(cutoff)
                try:
                    result = mgr.purge(closed_before=cutoff, archive=tmp_path / "archive", batch_size=3)
                except StoreError:  # SQLite: the write lock stayed busy past the retries; try again
                    continue
                purged += result.sessions
        finally:
            for thread in threads:
                thread.join(120)
            stop.set()
            sweeping.join(30)
        assert not errors, errors
        assert purged > 0, "no purge removed anything while the writers ran"
        last = max(cutoffs)
        for sid in written:
            try:
                history = mgr.history(sid)
            except SessionNotFound:
                continue  # purged: it was closed before a cutoff (checked by the archive below)
            assert [e.version for e in history] == list(range(1, len(history) + 1))
        archived = {path.stem for path in (tmp_path / "archive").rglob("*.jsonl")}
        gone = [sid for sid in written if _gone(mgr, sid)]
        assert len(gone) >= purged > 0
        assert {str(sid) for sid in gone} <= archived
        histories = {h[0].session_id: h for h in read_archive(tmp_path / "archive")}
        for sid in gone:  # each purged session was archived whole, closed, and closed before a cutoff
            history = histories[sid]
            assert [e.version for e in history] == list(range(1, len(history) + 1))
            assert str(history[-1].target_state) in {"completed", "failed", "expired"} or any(
                str(e.event) == "deleted" for e in history)
            assert history[-1].timestamp < last
        expired = [h for sid, h in histories.items() if any(str(e.event) == "expired" for e in h)]
        expired += [h for sid in written if sid not in gone
                    for h in [mgr.history(sid)] if any(str(e.event) == "expired" for e in h)]
        assert expired, "the sweeper expired nothing while the purges ran"
        assert mgr.verify() == []
        positions = [e.position for e in mgr.events(after=0, limit=10_000)]
        assert len(positions) == len(set(positions))
        assert positions == sorted(positions)
        assert last <= datetime.now(UTC)


def _gone(mgr: SessionManager, sid: UUID) -> bool:
    try:
        mgr.history(sid)
    except SessionNotFound:
        return True
    return False
