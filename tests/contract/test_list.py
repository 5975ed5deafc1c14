"""``list`` and ``count``: filters, ordering by creation, paging, limits, and hostile filter values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import InvalidInput, Session, SessionManager, SessionStatus
from sessionflow.testing import ManualClock

MakeManager = Callable[..., SessionManager]

HOSTILE = [
    "u1' OR '1'='1",
    "u1'; DROP TABLE sessions; --",
    "\" OR \"\"=\"",
    "%",
    "_",
    "u%",
    "*",
    "u1\\",
    "') OR 1=1 --",
    "1; DELETE FROM session_events",
    "é✓ unicode",
]


@pytest.fixture
def mgr(make_manager: MakeManager, clock: ManualClock) -> SessionManager:
    return make_manager(clock=clock, default_ttl=timedelta(hours=1))


@pytest.fixture
def population(mgr: SessionManager, clock: ManualClock) -> list[Session]:
    """Nine sessions, one second apart, across users, workspaces, modules and states."""
    made = []
    for i in range(9):
        s = mgr.create(performer_id="p", user_id=f"u{i % 3}", workspace_id=f"w{i % 2}", module_name=f"m{i % 4}")
        clock.advance(timedelta(seconds=1))
        made.append(s)
    mgr.start(made[1].id, performer_id="p")
    mgr.start(made[4].id, performer_id="p")
    mgr.complete(made[4].id, performer_id="p")
    mgr.fail(made[7].id, reason="r", performer_id="p")
    return [mgr.get(s.id) for s in made]


def ids(sessions: list[Session]) -> list[Any]:
    return [s.id for s in sessions]


def test_list_is_ordered_by_creation(mgr: SessionManager, population: list[Session]) -> None:
    listed = mgr.list()
    assert ids(listed) == ids(population)
    assert listed == population
    created = [s.created_at for s in listed]
    assert created == sorted(created)


def test_list_order_does_not_follow_updates(mgr: SessionManager, population: list[Session],
                                            clock: ManualClock) -> None:
    mgr.touch(population[0].id, performer_id="p")
    mgr.update(population[2].id, metadata={"x": 1}, performer_id="p")
    assert ids(mgr.list()) == ids(population)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "pending"}, [0, 2, 3, 5, 6, 8]),
        ({"status": SessionStatus.IN_PROGRESS}, [1]),
        ({"status": ["completed", "failed"]}, [4, 7]),
        ({"status": []}, []),
        ({"user_id": "u1"}, [1, 4, 7]),
        ({"workspace_id": "w0"}, [0, 2, 4, 6, 8]),
        ({"module_name": "m3"}, [3, 7]),
        ({"user_id": "u0", "workspace_id": "w1"}, [3]),
        ({"user_id": "u2", "status": "pending"}, [2, 5, 8]),
        ({"user_id": "u1", "workspace_id": "w1", "status": "failed"}, [7]),
        ({"user_id": "nobody"}, []),
        ({"user_id": ""}, []),
    ],
)
def test_list_filters(mgr: SessionManager, population: list[Session], filters: dict[str, Any],
                      expected: list[int]) -> None:
    assert ids(mgr.list(**filters)) == [population[i].id for i in expected]


def test_list_pages(mgr: SessionManager, population: list[Session]) -> None:
    every = ids(population)
    assert ids(mgr.list(limit=4)) == every[:4]
    assert ids(mgr.list(limit=4, offset=4)) == every[4:8]
    assert ids(mgr.list(limit=4, offset=8)) == every[8:]
    assert mgr.list(offset=9) == []
    assert mgr.list(offset=10_000) == []
    assert ids(mgr.list(status="pending", limit=2, offset=1)) == [population[2].id, population[3].id]
    paged = [s.id for offset in range(0, 9, 2) for s in mgr.list(limit=2, offset=offset)]
    assert paged == every


def test_list_limits(mgr: SessionManager, population: list[Session]) -> None:
    assert len(mgr.list(limit=1000)) == 9
    assert len(mgr.list(limit=1)) == 1
    for bad in [1001, 0, -1, 10**9, True, 2.0, "10", None]:
        with pytest.raises(InvalidInput) as info:
            mgr.list(limit=bad)
        assert info.value.field == "limit"
    for bad in [-1, -100, 1.5, "0", None]:
        with pytest.raises(InvalidInput) as info:
            mgr.list(offset=bad)
        assert info.value.field == "offset"


def test_list_default_limit_is_100(mgr: SessionManager) -> None:
    made = [mgr.create(performer_id="p") for _ in range(101)]
    assert len(mgr.list()) == 100
    assert len(mgr.list(limit=1000)) == 101
    assert mgr.list(offset=100)[0].id in {s.id for s in made}


@pytest.mark.parametrize("status", ["active", "PENDING", "", "pending; --", 3])
def test_list_unknown_status(mgr: SessionManager, population: list[Session], status: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        mgr.list(status=status)
    assert info.value.field == "status"
    with pytest.raises(InvalidInput):
        mgr.list(status=["pending", status])


def test_list_refuses_malformed_filters(mgr: SessionManager) -> None:
    for field in ("user_id", "workspace_id", "module_name"):
        with pytest.raises(InvalidInput) as info:
            mgr.list(**{field: 42})
        assert info.value.field == field
        with pytest.raises(InvalidInput):
            mgr.list(**{field: "x" * 1000})
        with pytest.raises(InvalidInput):
            mgr.list(**{field: "a\x00b"})


def test_hostile_filter_values_match_nothing_and_break_nothing(mgr: SessionManager,
                                                                population: list[Session]) -> None:
    for value in HOSTILE:
        for field in ("user_id", "workspace_id", "module_name"):
            assert mgr.list(**{field: value}) == []
    assert mgr.list() == population
    assert mgr.count() == 9
    for s in population:
        assert mgr.get(s.id) == s
        assert len(mgr.history(s.id)) == s.version


def test_hostile_values_are_stored_and_matched_exactly(mgr: SessionManager) -> None:
    made = {value: mgr.create(performer_id=value, user_id=value, workspace_id=value, module_name=value)
            for value in HOSTILE}
    plain = mgr.create(performer_id="p", user_id="u1", workspace_id="w", module_name="m")
    for value, s in made.items():
        for field in ("user_id", "workspace_id", "module_name"):
            assert ids(mgr.list(**{field: value})) == [s.id], (field, value)
        assert mgr.get(s.id).user_id == value
        assert mgr.history(s.id)[0].performer_id == value
    assert ids(mgr.list(user_id="u1")) == [plain.id]
    assert mgr.count() == len(HOSTILE) + 1


def test_count(mgr: SessionManager, population: list[Session]) -> None:
    assert mgr.count() == 9
    assert mgr.count("pending") == 6
    assert mgr.count(SessionStatus.COMPLETED) == 1
    assert mgr.count("expired") == 0
    mgr.delete(population[0].id, performer_id="p")
    assert mgr.count() == 8
    assert mgr.count("pending") == 5
    with pytest.raises(InvalidInput):
        mgr.count("bogus")


def test_empty(mgr: SessionManager) -> None:
    assert mgr.list() == []
    assert mgr.list(status="pending", user_id="u") == []
    assert mgr.count() == 0
