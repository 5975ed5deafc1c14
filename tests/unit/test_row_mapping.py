"""The SQL store's row mapping: the columns an update writes are exactly those whose row value changed."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.adapters.sqlalchemy.rows import SESSION_COLUMNS, session_changes, session_from_row, session_row
from sessionflow.application.ports import Change
from sessionflow.domain.models import Session
from sessionflow.errors import SessionflowError
from sessionflow.testing import ManualClock


class _Recording(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[Change] = []

    def append(self, change: Change) -> None:
        super().append(change)
        self.changes.append(change)


def _naive_changes(previous: Session, session: Session) -> dict[str, Any]:
    """The reference: render both rows whole and keep the columns that differ."""
    old, new = session_row(previous), session_row(session)
    return {name: value for name, value in new.items() if old[name] != value and name != "id"}


def _workload(manager: SessionManager, clock: ManualClock, rng: random.Random, steps: int) -> None:
    ids = []
    for _ in range(steps):
        roll = rng.random()
        try:
            if roll < 0.2 or not ids:
                user = f"u{rng.randrange(4)}"
                ids.append(manager.create(performer_id=user, user_id=user, file_paths=["a.py", "b.py"],
                                          metadata={"n": rng.randrange(3)},
                                          ttl=timedelta(minutes=rng.choice([5, 60]))).id)
                continue
            sid = rng.choice(ids)
            user = manager.get(sid).user_id or "x"
            action = rng.randrange(9)
            if action == 0:
                manager.start(sid, performer_id=user)
            elif action == 1:
                manager.record_file(sid, rng.choice(["a.py", "b.py"]), rng.choice([None, "boom"]),
                                    performer_id=user)
            elif action == 2:
                manager.add_note(sid, file_path="a.py", status="ok", memory_id=f"m{rng.randrange(9)}",
                                 performer_id=user)
            elif action == 3:
                manager.update(sid, performer_id=user, current_file=rng.choice(["a.py", None]),
                               metadata={"n": rng.randrange(3)})
            elif action == 4:
                manager.touch(sid, performer_id=user)
            elif action == 5:
                manager.complete(sid, performer_id=user)
            elif action == 6:
                manager.fail(sid, reason="broken", performer_id=user)
            elif action == 7:
                manager.delete(sid, performer_id=user)
            else:
                clock.advance(timedelta(minutes=rng.choice([1, 7, 61])))
                manager.get(sid)  # may expire it lazily
        except SessionflowError:
            pass


@pytest.mark.parametrize("sliding", [False, True])
def test_update_columns_are_exactly_the_changed_ones(sliding: bool) -> None:
    store = _Recording()
    clock = ManualClock()
    manager = SessionManager(store, clock=clock, sliding=sliding,
                             max_lifetime=timedelta(hours=2) if sliding else None)
    _workload(manager, clock, random.Random(7 + sliding), 1500)
    updates = [c for c in store.changes if c.previous is not None]
    assert len(updates) > 200
    for change in updates:
        assert change.previous is not None
        assert session_changes(change.previous, change.session) == _naive_changes(change.previous,
                                                                                  change.session)
        # and the row written reads back as the same session
        row = session_row(change.session)
        assert session_from_row(tuple(row[name] for name in SESSION_COLUMNS)) == change.session


def test_a_change_of_id_is_refused() -> None:
    manager = SessionManager.in_memory(clock=ManualClock())
    a = manager.create(performer_id="u")
    b = manager.create(performer_id="u")
    with pytest.raises(SessionflowError, match="another id"):
        session_changes(a, b.evolve(version=2))


def test_hot_path_event_values_match_the_event_row() -> None:
    """The hot path writes an event's values straight from the model: the same as its ``event_row``."""
    import json

    from sessionflow.adapters.sqlalchemy.postgres import PostgresSql
    from sessionflow.adapters.sqlalchemy.rows import EVENT_COLUMNS, event_row
    from sessionflow.adapters.sqlalchemy.sqlite import SqliteSql

    store = _Recording()
    clock = ManualClock()
    _workload(SessionManager(store, clock=clock), clock, random.Random(3), 300)
    events = [e for c in store.changes for e in c.events]
    assert len({str(e.event) for e in events}) >= 6
    for event in events:
        row = event_row(event)
        for sql, uuid in ((SqliteSql(), lambda u: u.hex), (PostgresSql(), lambda u: u)):
            values = dict(zip(EVENT_COLUMNS, sql.event_values(event), strict=True))
            assert json.loads(values.pop("payload")) == row["payload"]
            expected = {k: v for k, v in row.items() if k != "payload"}
            expected["record_id"], expected["session_id"] = uuid(row["record_id"]), uuid(row["session_id"])
            assert values == expected
            assert all(type(values[k]) is str for k in ("event", "target_state"))
