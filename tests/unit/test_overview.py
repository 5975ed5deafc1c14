"""The overview's reads on a store that has none of their capabilities (the manager walks what every store
offers instead), and a session's diagram: its SVG marks, and its plain-text fallback without Graphviz."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application.ports import CountsByStatus, CountsQueries, FiltersFeed, ListsByDeadline
from sessionflow.testing import ManualClock
from tests.cli.test_diagram import dot  # noqa: F401  (the fixture: Graphviz installed, else skip or fail in CI)


class PlainStore:
    """An in-memory store showing only the members of ``EventStore``: no overview capability."""

    _SHOWN = ("append", "append_many", "get", "history", "query", "count", "next_deadline", "has_due",
              "expire_due", "session_ids", "read_events", "last_position", "consumer_position",
              "save_consumer_position", "histories", "projections", "replace_projection", "ping",
              "read_together", "close")

    def __init__(self) -> None:
        self._inner = InMemoryEventStore()

    def __getattr__(self, name: str) -> Any:
        if name in self._SHOWN:
            return getattr(self._inner, name)
        raise AttributeError(name)


@pytest.fixture
def managers() -> list[SessionManager]:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    made = [SessionManager(PlainStore(), clock=clock), SessionManager(InMemoryEventStore(), clock=clock)]
    for mgr in made:
        for n in range(1500):  # more than one page of the walk
            session = mgr.create(performer_id="p", user_id=f"u{n % 3}", ttl=timedelta(minutes=n % 50 + 1))
            if n % 7 == 0:
                mgr.fail(session.id, reason="r", performer_id="p")
    return made


def test_a_plain_store_has_no_overview_capability() -> None:
    store = PlainStore()
    for capability in (ListsByDeadline, CountsQueries, FiltersFeed, CountsByStatus):
        assert not isinstance(store, capability)


def test_without_the_capabilities_the_manager_answers_the_same(managers: list[SessionManager]) -> None:
    plain, full = managers
    for window, user in ((timedelta(minutes=10), None), (timedelta(minutes=30), "u1")):
        expected = full.deadlines_within(window, user_id=user, limit=1000)
        found = plain.deadlines_within(window, user_id=user, limit=1000)
        assert [s.expires_at for s in found] == [s.expires_at for s in expected]
        assert {s.user_id for s in found} == {s.user_id for s in expected}
        assert len(found) == len(expected) > 0
    for filters in ({}, {"user_id": "u2"}, {"status": "failed"}):
        assert plain.count_by_status(**filters) == full.count_by_status(**filters)
    assert plain.count_by_status() == {"failed": 215, "pending": 1285}
    failed = plain.events(event="failed", limit=300)
    assert [e.session_id for e in failed] == [e.session_id for e in plain.events(limit=10_000)
                                              if str(e.event) == "failed"][:300]
    assert len(plain.events(event="failed", user_id="u0", after=5, limit=10)) == 10


def _group(svg: str, ident: str) -> str:
    match = re.search(rf'<g id="{re.escape(ident)}" class="([^"]*)"', svg)
    return match.group(1) if match else ""


def test_the_svg_marks_the_current_state_and_the_path(dot: None) -> None:  # noqa: F811
    with SessionManager.in_memory() as mgr:
        session = mgr.create(performer_id="p")
        mgr.start(session.id, performer_id="p")
        drawn = mgr.diagram(session.id)
    assert drawn.format == "svg"
    assert "current" in _group(drawn.content, "state:in_progress")
    assert "visited" in _group(drawn.content, "state:pending")
    assert "taken" in _group(drawn.content, "transition:start:pending:in_progress")
    assert "taken" not in _group(drawn.content, "transition:fail:in_progress:failed")


def test_without_graphviz_the_diagram_is_plain_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    assert shutil.which("dot") is None
    with SessionManager.in_memory() as mgr:
        session = mgr.create(performer_id="p")
        mgr.fail(session.id, reason="r", performer_id="p")
        drawn = mgr.diagram(session.id)
    assert drawn.format == "text"
    assert drawn.content.splitlines()[:2] == ["Session lifecycle: now Failed", "path: pending --failed--> failed"]
    assert "* Failed (final)" in drawn.content
