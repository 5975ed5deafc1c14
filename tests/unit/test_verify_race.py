"""verify() reads the projection and the events in two passes; a write landing between them is no difference."""

from __future__ import annotations

from collections.abc import Iterator

from sessionflow import SessionManager
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.domain.models import SessionEvent


def test_a_write_between_the_two_passes_is_not_reported() -> None:
    store = InMemoryEventStore()
    with SessionManager(store) as manager:
        sid = manager.create(performer_id="p").id
        original = store.histories

        def histories_after_a_write(batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
            manager.touch(sid, performer_id="other")  # commits after the projection pass read version 1
            return original(batch_size)

        store.histories = histories_after_a_write  # type: ignore[method-assign]
        assert manager.verify() == []


def test_a_real_difference_is_still_reported() -> None:
    store = InMemoryEventStore()
    with SessionManager(store) as manager:
        sid = manager.create(performer_id="p").id
        manager.touch(sid, performer_id="p")
        stale = store.history(sid)
        # A projection that lost its last update (as a broken store would leave it).
        from sessionflow import replay

        store.replace_projection([replay(stale[:1])])
        differences = manager.verify()
        assert "version" in {d.field for d in differences}
        assert all(d.session_id == sid for d in differences)
