"""The SQL store's sweep (see ``_expire_due_fast``), in batches of every size — both of each store's write
strategies, small and large — expires each overdue session exactly once, writes the rows and events
sessionflow's fold expects, and leaves sessions that are not due alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionflow import SessionManager, SessionStatus, replay
from sessionflow.testing import ManualClock

_BATCH_SIZES = [1, 7, 100, 200, 229, 230, 231, 1000]


@pytest.mark.parametrize("batch_size", _BATCH_SIZES)
def test_every_batch_size_expires_each_overdue_session_once(sql_url: str, clock: ManualClock,
                                                            batch_size: int) -> None:
    with SessionManager.open(sql_url, clock=clock) as manager:
        _sweep_in_batches(manager, clock, batch_size)


def _sweep_in_batches(manager: SessionManager, clock: ManualClock, batch_size: int) -> None:
    overdue = [manager.create(user_id=f"u{i}", metadata={"i": i, "name": "é"}, ttl=timedelta(minutes=1 + i % 3),
                              performer_id=f"u{i}").id for i in range(230)]
    for sid in overdue[::2]:
        manager.start(sid, performer_id=manager.store.get(sid).user_id)  # type: ignore[union-attr]
    later = manager.create(performer_id="w", ttl=timedelta(hours=2)).id
    closed = manager.create(performer_id="w").id
    manager.fail(closed, reason="gone", performer_id="w")
    expired: list[object] = []
    manager.subscribe(lambda event: expired.append(event.session_id))
    clock.advance(timedelta(minutes=5))

    assert manager.expire_sessions(batch_size=batch_size) == len(overdue)
    assert manager.expire_sessions(batch_size=batch_size) == 0

    assert sorted(map(str, expired)) == sorted(map(str, overdue))
    for sid in overdue[:10] + overdue[-10:]:
        session = manager.store.get(sid)
        assert session is not None
        assert session.status is SessionStatus.EXPIRED
        assert session.closed_by == "system"
        assert replay(manager.history(sid)) == session
    assert manager.get(later).status is SessionStatus.PENDING
    assert manager.get(closed).status is SessionStatus.FAILED
    assert manager.next_deadline() == manager.get(later).expires_at
    assert manager.verify() == []
