"""``list`` and ``count``: filters, ordering by creation, paging, limits, and hostile filter values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from statemachine import State, StateMachine

from sessionflow import InvalidInput, Session, SessionManager, SessionStatus
from sessionflow.domain.definitions import LifecycleDefinition
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

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


class _Jobs(StateMachine):
    """A lifecycle other than the built-in one, for the ``lifecycle`` filter: queued -> running -> done."""

    queued = State(initial=True)
    running = State()
    done = State(final=True)

    run = queued.to(running)
    finish = running.to(done)


#: Its definition (a name of its own, so it cannot clash with the lifecycles of the project under test).
JOBS = LifecycleDefinition("sessionflow.contract.jobs", 1, _Jobs)


def by(field: str, value: Any) -> dict[str, Any]:
    """``{field: value}``: one filter of ``list``, given by name."""
    return {field: value}


def ids(sessions: list[Session]) -> list[Any]:
    return [s.id for s in sessions]


def walk(mgr: SessionManager, limit: int, **filters: Any) -> list[list[Session]]:
    pages = []
    cursor = None
    while True:
        page = mgr.page(cursor=cursor, limit=limit, **filters)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        assert len(page.items) == limit
        cursor = page.next_cursor


class TestList(ContractSuite):
    """list, page and count."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(hours=1))

    @pytest.fixture
    def population(self, mgr: SessionManager, clock: ManualClock) -> list[Session]:
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

    def test_list_is_ordered_by_creation(self, mgr: SessionManager, population: list[Session]) -> None:
        listed = mgr.list()
        assert ids(listed) == ids(population)
        assert listed == population
        created = [s.created_at for s in listed]
        assert created == sorted(created)

    def test_list_order_does_not_follow_updates(self, mgr: SessionManager, population: list[Session],
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
    def test_list_filters(self, mgr: SessionManager, population: list[Session], filters: dict[str, Any],
                          expected: list[int]) -> None:
        assert ids(mgr.list(**filters)) == [population[i].id for i in expected]

    def test_list_pages(self, mgr: SessionManager, population: list[Session]) -> None:
        every = ids(population)
        assert ids(mgr.list(limit=4)) == every[:4]
        assert ids(mgr.list(limit=4, offset=4)) == every[4:8]
        assert ids(mgr.list(limit=4, offset=8)) == every[8:]
        assert mgr.list(offset=9) == []
        assert mgr.list(offset=10_000) == []
        assert ids(mgr.list(status="pending", limit=2, offset=1)) == [population[2].id, population[3].id]
        paged = [s.id for offset in range(0, 9, 2) for s in mgr.list(limit=2, offset=offset)]
        assert paged == every

    def test_list_limits(self, mgr: SessionManager, population: list[Session]) -> None:
        assert len(mgr.list(limit=1000)) == 9
        assert len(mgr.list(limit=1)) == 1
        bad: Any
        for bad in [1001, 0, -1, 10**9, True, 2.0, "10", None]:
            with pytest.raises(InvalidInput) as info:
                mgr.list(limit=bad)
            assert info.value.field == "limit"
        for bad in [-1, -100, 1.5, "0", None]:
            with pytest.raises(InvalidInput) as info:
                mgr.list(offset=bad)
            assert info.value.field == "offset"

    def test_list_default_limit_is_100(self, mgr: SessionManager) -> None:
        made = [mgr.create(performer_id="p") for _ in range(101)]
        assert len(mgr.list()) == 100
        assert len(mgr.list(limit=1000)) == 101
        assert mgr.list(offset=100)[0].id in {s.id for s in made}

    @pytest.mark.parametrize("status", ["active", "PENDING", "", "pending; --", 3])
    def test_list_unknown_status(self, mgr: SessionManager, population: list[Session], status: Any) -> None:
        with pytest.raises(InvalidInput) as info:
            mgr.list(status=status)
        assert info.value.field == "status"
        with pytest.raises(InvalidInput):
            mgr.list(status=["pending", status])

    def test_list_refuses_malformed_filters(self, mgr: SessionManager) -> None:
        for field in ("user_id", "workspace_id", "module_name"):
            with pytest.raises(InvalidInput) as info:
                mgr.list(**by(field, 42))
            assert info.value.field == field
            with pytest.raises(InvalidInput):
                mgr.list(**by(field, "x" * 1000))
            with pytest.raises(InvalidInput):
                mgr.list(**by(field, "a\x00b"))

    def test_hostile_filter_values_match_nothing_and_break_nothing(self, mgr: SessionManager,
                                                                   population: list[Session]) -> None:
        for value in HOSTILE:
            for field in ("user_id", "workspace_id", "module_name"):
                assert mgr.list(**by(field, value)) == []
        assert mgr.list() == population
        assert mgr.count() == 9
        for s in population:
            assert mgr.get(s.id) == s
            assert len(mgr.history(s.id)) == s.version

    def test_hostile_values_are_stored_and_matched_exactly(self, mgr: SessionManager) -> None:
        made = {value: mgr.create(performer_id=value, user_id=value, workspace_id=value, module_name=value)
                for value in HOSTILE}
        plain = mgr.create(performer_id="p", user_id="u1", workspace_id="w", module_name="m")
        for value, s in made.items():
            for field in ("user_id", "workspace_id", "module_name"):
                assert ids(mgr.list(**by(field, value))) == [s.id], (field, value)
            assert mgr.get(s.id).user_id == value
            assert mgr.history(s.id)[0].performer_id == value
        assert ids(mgr.list(user_id="u1")) == [plain.id]
        assert mgr.count() == len(HOSTILE) + 1

    def test_count(self, mgr: SessionManager, population: list[Session]) -> None:
        assert mgr.count() == 9
        assert mgr.count("pending") == 6
        assert mgr.count(SessionStatus.COMPLETED) == 1
        assert mgr.count("expired") == 0
        mgr.delete(population[0].id, performer_id="p")
        assert mgr.count() == 8
        assert mgr.count("pending") == 5
        with pytest.raises(InvalidInput):
            mgr.count("bogus")

    def test_empty(self, mgr: SessionManager) -> None:
        assert mgr.list() == []
        assert mgr.list(status="pending", user_id="u") == []
        assert mgr.count() == 0

    # ---------------------------------------------------------------------- lifecycle, creation range, cursor

    def test_list_by_lifecycle(self, mgr: SessionManager, population: list[Session]) -> None:
        jobs = [mgr.create(performer_id="p", user_id="u1", lifecycle=JOBS) for _ in range(2)]  # creation order
        assert ids(mgr.list(lifecycle=JOBS.name)) == ids(jobs)
        assert ids(mgr.list(lifecycle="session")) == ids(population)
        assert ids(mgr.list(lifecycle=JOBS.name, user_id="u1")) == ids(jobs)
        assert ids(mgr.list(lifecycle=JOBS.name, status="queued", user_id="u1")) == ids(jobs)
        assert mgr.list(lifecycle=JOBS.name, status="pending") == []
        assert mgr.list(lifecycle="nothing-registered") == []
        assert ids(mgr.page(lifecycle=JOBS.name, limit=1).items) == ids(jobs[:1])
        bad: Any
        for bad in (3, "x" * 129, "a\x00b"):
            with pytest.raises(InvalidInput) as info:
                mgr.list(lifecycle=bad)
            assert info.value.field == "lifecycle"

    def test_list_by_creation_range(self, mgr: SessionManager, population: list[Session]) -> None:
        """``created_after <= created_at < created_before``: consecutive ranges share no session and miss none."""
        at = [s.created_at for s in population]
        assert ids(mgr.list(created_after=at[3])) == ids(population[3:])
        assert ids(mgr.list(created_before=at[3])) == ids(population[:3])
        assert ids(mgr.list(created_after=at[2], created_before=at[5])) == ids(population[2:5])
        assert ids(mgr.list(created_after=at[2], created_before=at[5], user_id="u1")) == [population[4].id]
        assert ids(mgr.list(created_after=at[0], status="pending", limit=2, offset=1)) == ids([population[2],
                                                                                              population[3]])
        assert mgr.list(created_after=at[4], created_before=at[4]) == []
        # a bound between two milliseconds, and in another time zone, mean the same instant
        plus_half_ms = at[4] + timedelta(microseconds=500)
        assert ids(mgr.list(created_after=plus_half_ms)) == ids(population[5:])
        assert ids(mgr.list(created_before=plus_half_ms)) == ids(population[:5])
        paris = timezone(timedelta(hours=1))
        assert ids(mgr.list(created_after=at[6].astimezone(paris))) == ids(population[6:])
        windows = [mgr.list(created_after=at[i], created_before=at[i + 3]) for i in (0, 3)] + [
            mgr.list(created_after=at[6])]
        assert [s.id for window in windows for s in window] == ids(population)

    def test_list_refuses_a_bad_creation_range(self, mgr: SessionManager) -> None:
        now = datetime(2030, 1, 1, tzinfo=UTC)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"created_after": datetime(2030, 1, 1)}, "created_after"),
            ({"created_before": datetime(2030, 1, 1)}, "created_before"),
            ({"created_after": "2030-01-01T00:00:00Z"}, "created_after"),
            ({"created_before": 1_700_000_000}, "created_before"),
            ({"created_after": now, "created_before": now - timedelta(milliseconds=1)}, "created_after")]
        for arguments, field in cases:
            for method in (mgr.list, mgr.page):
                with pytest.raises(InvalidInput) as info:
                    method(**arguments)
                assert info.value.field == field

    @pytest.mark.parametrize("filters", [{}, {"status": "pending"}, {"status": ["pending", "failed"]},
                                         {"user_id": "u1"}, {"user_id": "u2", "status": ["pending", "in_progress"]},
                                         {"workspace_id": "w0"}, {"lifecycle": "session"}, {"module_name": "m1"}])
    def test_cursor_walks_every_page(self, mgr: SessionManager, population: list[Session],
                                     filters: dict[str, Any]) -> None:
        everything = mgr.list(limit=1000, **filters)
        for limit in (1, 2, 4, 1000):
            pages = walk(mgr, limit, **filters)
            assert [s for page in pages for s in page] == everything
            assert len(pages) == max(1, -(-len(everything) // limit))
        first = mgr.page(limit=2, **filters)
        assert (first.next_cursor is None) == (len(everything) <= 2)
        if first.next_cursor is not None:
            assert ids(mgr.list(cursor=first.next_cursor, limit=2, **filters)) == ids(everything[2:4])
            assert ids(mgr.list(cursor=first.next_cursor, offset=1, limit=2, **filters)) == ids(everything[3:5])

    def test_cursor_orders_sessions_of_one_millisecond_in_creation_order(self, mgr: SessionManager) -> None:
        made = [mgr.create(performer_id="p", user_id="same-ms") for _ in range(7)]  # the clock does not move
        assert len({s.created_at for s in made}) == 1
        expected = made
        assert mgr.list(user_id="same-ms") == expected
        for limit in (1, 2, 3):
            assert [s for page in walk(mgr, limit, user_id="same-ms") for s in page] == expected

    def test_cursor_is_stable_while_sessions_are_created(self, mgr: SessionManager, population: list[Session],
                                                         clock: ManualClock) -> None:
        seen: list[Session] = []
        cursor = None
        for _ in range(3):
            page = mgr.page(cursor=cursor, limit=3)
            seen.extend(page.items)
            cursor = page.next_cursor
            clock.advance(timedelta(seconds=1))
            mgr.create(performer_id="p")  # newer than everything listed: it comes last, nothing shifts
        assert ids(seen) == ids(population)
        rest = mgr.page(cursor=cursor, limit=10)
        assert len(rest.items) == 3
        assert rest.next_cursor is None
        offsets = [s.id for offset in (0, 3, 6) for s in mgr.list(limit=3, offset=offset)]
        assert offsets == ids(population)  # (offsets agree here only because nothing older was created)

    def test_cursor_after_the_last_session_and_after_deleted_ones(self, mgr: SessionManager,
                                                                  population: list[Session]) -> None:
        page = mgr.page(limit=8)
        assert page.next_cursor is not None
        last = mgr.page(cursor=page.next_cursor, limit=8)
        assert ids(last.items) == [population[8].id]
        assert last.next_cursor is None
        mgr.delete(population[8].id, performer_id="p")
        assert mgr.page(cursor=page.next_cursor).items == []
        head = mgr.page(limit=2)
        mgr.delete(population[1].id, performer_id="p")  # the session the cursor stands after is gone: no matter
        assert ids(mgr.list(cursor=head.next_cursor, limit=2)) == ids(population[2:4])

    def test_a_page_without_a_next_one(self, mgr: SessionManager, population: list[Session]) -> None:
        assert mgr.page(limit=9).next_cursor is None
        assert mgr.page(limit=1000).next_cursor is None
        assert mgr.page(user_id="nobody") == mgr.page(status=[])
        assert mgr.page(user_id="nobody").items == []
        assert mgr.page(user_id="nobody").next_cursor is None

    def test_bad_cursors_are_refused(self, mgr: SessionManager, population: list[Session]) -> None:
        good = mgr.page(limit=2).next_cursor
        assert good is not None
        tampered = [good[:-1] + ("A" if good[-1] != "A" else "B"), good[:10] + ("x" if good[10] != "x" else "y")
                    + good[11:], good[:-4], good + "AAAA", "", "not a cursor", "%%%%", "é" * 40, "A" * 40,
                    good.replace("-", "+").replace("_", "/") + "==" if ("-" in good or "_" in good) else good + "!"]
        bad: Any
        for bad in [*tampered, 12, b"bytes", ["x"]]:
            for method in (mgr.list, mgr.page):
                with pytest.raises(InvalidInput) as info:
                    method(cursor=bad)
                assert info.value.field == "cursor", bad
        with pytest.raises(InvalidInput) as info:
            mgr.page(limit=0)
        assert info.value.field == "limit"
