"""The seed contract of ``sessions.start`` on every store: one write, so a refused or failed start leaves every
table, the feed and the audit trail as they were; concurrent starts of one user let exactly one through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager, StoreError
from sessionflow.adapters.jsonl import JsonlAuditTrail
from sessionflow.entrypoints.http import create_app
from sessionflow.testing import ManualClock

START = "/session_manager/sessions.start"
MakeManager = Callable[..., SessionManager]


def _state(manager: SessionManager, audit: Path) -> tuple[Any, ...]:
    sessions = sorted(manager.store.projections(), key=lambda s: str(s.id))
    files = sorted(str(p.relative_to(audit)) for p in audit.rglob("*.jsonl")) if audit.exists() else []
    return (manager.count(), manager.last_position(), [(s.id, s.version, s.status) for s in sessions], files,
            [(e.session_id, e.version) for e in manager.events(after=0, limit=1000)])


def test_a_refused_start_changes_nothing_anywhere(backend: str, make_manager: MakeManager, clock: ManualClock,
                                                   tmp_path: Path) -> None:
    manager = make_manager(clock=clock, single_active_per_user=True)
    audit = tmp_path / "audit"
    trail = JsonlAuditTrail.attach(manager, audit)
    client = TestClient(create_app(manager))
    first = client.post(START, json={"user_id": "u1", "performer_id": "u1"})
    assert first.status_code == 200
    before = _state(manager, audit)
    refused = client.post(START, json={"user_id": "u1", "performer_id": "u1", "session_notes": "again"})
    assert refused.status_code == 409
    assert refused.json()["active_session_id"] == first.json()["session_id"]
    assert refused.json()["session_id"] is None
    assert _state(manager, audit) == before
    trail.detach()


class _FailingAppends:
    """The store, whose appends fail before the commit (the database went away)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def append(self, change: Any) -> None:
        raise StoreError("the database went away")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_start_whose_append_fails_leaves_nothing(backend: str, make_manager: MakeManager, clock: ManualClock,
                                                   tmp_path: Path) -> None:
    manager = make_manager(clock=clock)
    audit = tmp_path / "audit"
    broken = SessionManager(_FailingAppends(manager.store), clock=clock, owns_store=False)
    trail = JsonlAuditTrail.attach(broken, audit)
    client = TestClient(create_app(broken))
    before = _state(manager, audit)
    response = client.post(START, json={"user_id": "u1", "performer_id": "u1"})
    assert response.status_code == 503
    assert response.json()["code"] == "store_error"
    assert _state(manager, audit) == before  # no pending session left behind, no clean-up event
    trail.detach()


@pytest.mark.parametrize("clients", [12])
def test_concurrent_starts_of_one_user_through_the_route(backend: str, make_manager: MakeManager,
                                                         clients: int) -> None:
    manager = make_manager(single_active_per_user=True)
    app = create_app(manager)
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def start() -> None:
        with TestClient(app) as client:
            barrier.wait()
            status = client.post(START, json={"user_id": "u1", "performer_id": "u1"}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=start) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * (clients - 1)
    assert manager.count() == 1
    events = manager.events(after=0, limit=1000)
    assert [e.event for e in events] == ["created", "started"]  # no event of a refused start anywhere
