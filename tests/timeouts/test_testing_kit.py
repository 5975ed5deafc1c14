"""The testing kit: ``ManualClock``, ``TimeTravel`` / ``advance``, the pytest plugin's fixtures (here and in a
fresh project), and the engine's clock under freezegun and time-machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionflow import EventType, SessionEvent, SessionManager, SessionStatus, SystemClock
from sessionflow.testing import ManualClock, TimeTravel, advance

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def expired_at(manager: SessionManager, sid: object) -> list[tuple[str, datetime]]:
    return [(e.performer_id, e.timestamp) for e in manager.history(sid)  # type: ignore[arg-type]
            if e.event is EventType.EXPIRED]


# ---------------------------------------------------------------- ManualClock


def test_the_manual_clock_moves_only_forward() -> None:
    clock = ManualClock()
    assert clock.now() == T0
    assert clock.advance(timedelta(minutes=5)) == T0 + timedelta(minutes=5)
    assert clock.set(T0 + timedelta(hours=1)) == clock.now()
    with pytest.raises(ValueError, match="does not go back"):
        clock.set(T0)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(timedelta(seconds=-1))


# ---------------------------------------------------------------- TimeTravel and advance


def test_advance_runs_each_timeout_at_its_deadline_in_deadline_order() -> None:
    with TimeTravel() as travel:
        manager = travel.manager()
        heard: list[tuple[object, datetime, datetime]] = []

        def on_event(event: SessionEvent) -> None:
            if event.event is EventType.EXPIRED:
                heard.append((event.session_id, event.timestamp, travel.clock.now()))

        manager.subscribe(on_event)
        ttls = [7, 2, 5, 2, 9]
        sessions = [manager.create(performer_id="u", ttl=timedelta(minutes=m)) for m in ttls]
        late = manager.create(performer_id="u", ttl=timedelta(minutes=30))
        assert travel.advance(timedelta(minutes=10)) == 5
        assert travel.now() == T0 + timedelta(minutes=10)
        by_deadline = sorted(sessions, key=lambda s: s.expires_at)
        assert [h[1] for h in heard] == [s.expires_at for s in by_deadline]  # in order, each at its deadline
        assert all(stamp == clock_then for _, stamp, clock_then in heard)  # the clock stood at the deadline
        assert {h[0] for h in heard} == {s.id for s in sessions}
        for s in sessions:
            assert expired_at(manager, s.id) == [("system", s.expires_at)]
        assert manager.store.get(late.id).status is SessionStatus.PENDING  # type: ignore[union-attr]


def test_advance_stops_exactly_at_the_deadline() -> None:
    with TimeTravel() as travel:
        manager = travel.manager(default_ttl=timedelta(minutes=10))
        s = manager.create(performer_id="u")
        assert travel.advance(timedelta(minutes=10) - timedelta(milliseconds=1)) == 0
        assert manager.store.get(s.id).status is SessionStatus.PENDING  # type: ignore[union-attr]
        assert travel.advance(timedelta(milliseconds=1)) == 1
        assert expired_at(manager, s.id) == [("system", T0 + timedelta(minutes=10))]
        assert travel.advance(timedelta(hours=5)) == 0  # nothing twice


def test_advance_neither_sleeps_nor_starts_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("advance slept")

    before = {t.ident for t in threading.enumerate()}
    with TimeTravel() as travel:
        manager = travel.manager()
        for i in range(200):
            manager.create(performer_id="u", ttl=timedelta(minutes=1 + i))
        monkeypatch.setattr(time, "sleep", no_sleep)
        started = time.perf_counter()
        assert travel.advance(timedelta(days=1)) == 200
        assert time.perf_counter() - started < 5
        assert {t.ident for t in threading.enumerate()} == before


def test_the_advance_function_drives_a_manager_on_a_manual_clock() -> None:
    clock = ManualClock()
    with SessionManager.in_memory(clock=clock) as manager:
        s = manager.create(performer_id="u", ttl=timedelta(minutes=5))
        assert advance(manager, timedelta(minutes=5)) == 1
        assert clock.now() == T0 + timedelta(minutes=5)
        assert manager.get(s.id).status is SessionStatus.EXPIRED
    with SessionManager.in_memory() as on_system_clock, pytest.raises(TypeError, match="ManualClock"):
        advance(on_system_clock, timedelta(minutes=5))


def test_time_travel_refuses_misuse() -> None:
    with TimeTravel() as travel, SessionManager.in_memory() as foreign:
        with pytest.raises(ValueError, match="clock"):
            travel.attach(foreign)
        with pytest.raises(ValueError, match="does not go back"):
            travel.advance(timedelta(seconds=-1))
        with pytest.raises(ValueError, match="does not go back"):
            travel.advance_to(T0 - timedelta(seconds=1))


def test_time_travel_drives_every_attached_manager_and_closes_only_its_own(tmp_path: Path) -> None:
    clock = ManualClock()
    mine_outside = SessionManager.in_memory(clock=clock)
    with TimeTravel(clock, mine_outside) as travel:
        memory = travel.manager()
        durable = travel.sqlite_manager(tmp_path / "kit.db")
        ids = [m.create(performer_id="u", ttl=timedelta(minutes=k)).id
               for k, m in enumerate((mine_outside, memory, durable), start=1)]
        assert travel.advance_to(T0 + timedelta(minutes=3)) == 3
        for manager, sid in zip((mine_outside, memory, durable), ids, strict=True):
            assert manager.store.get(sid).status is SessionStatus.EXPIRED  # type: ignore[union-attr]
    mine_outside.create(performer_id="u")  # still open: TimeTravel closes only what it made
    mine_outside.close()


# ---------------------------------------------------------------- the plugin's fixtures


def test_the_fixtures(sessionflow_clock: ManualClock, sessionflow_time: TimeTravel,
                      sessionflow_manager: SessionManager, sessionflow_sqlite_manager: SessionManager) -> None:
    assert sessionflow_time.clock is sessionflow_clock
    assert sessionflow_manager.clock is sessionflow_sqlite_manager.clock is sessionflow_clock
    assert set(sessionflow_time.managers) == {sessionflow_manager, sessionflow_sqlite_manager}
    a = sessionflow_manager.create(performer_id="u", ttl=timedelta(minutes=1))
    b = sessionflow_sqlite_manager.create(performer_id="u", ttl=timedelta(minutes=2))
    assert sessionflow_time.advance(timedelta(minutes=2)) == 2
    assert expired_at(sessionflow_manager, a.id) == [("system", T0 + timedelta(minutes=1))]
    assert expired_at(sessionflow_sqlite_manager, b.id) == [("system", T0 + timedelta(minutes=2))]


FRESH_TEST = '''
from datetime import timedelta

import pytest

from sessionflow import EventType, SessionStatus


def test_in_memory(sessionflow_manager, sessionflow_time):
    s = sessionflow_manager.create(performer_id="me", ttl=timedelta(minutes=5))
    assert sessionflow_time.advance(timedelta(minutes=4)) == 0
    assert sessionflow_manager.get(s.id).status is SessionStatus.PENDING
    assert sessionflow_time.advance(timedelta(minutes=1)) == 1
    assert [e.performer_id for e in sessionflow_manager.history(s.id) if e.event is EventType.EXPIRED] == ["system"]


def test_sqlite(sessionflow_sqlite_manager, sessionflow_clock, sessionflow_time):
    s = sessionflow_sqlite_manager.create(performer_id="me", ttl=timedelta(minutes=5))
    sessionflow_time.advance(timedelta(hours=1))
    assert sessionflow_sqlite_manager.get(s.id).closed_at == s.expires_at


def test_the_fixtures_come_from_the_entry_point(request: pytest.FixtureRequest):
    plugin = request.config.pluginmanager.get_plugin("sessionflow")  # the name of the pytest11 entry point
    assert plugin is not None
    assert plugin.__name__ == "sessionflow.pytest_plugin"
    assert request.config.pluginmanager.get_plugin("conftest") is None  # nothing local provides them
'''


def test_the_fixtures_work_in_a_fresh_project_that_only_installs_sessionflow(tmp_path: Path) -> None:
    project = tmp_path / "fresh-project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_with_sessionflow.py").write_text(textwrap.dedent(FRESH_TEST), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
                                                            "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}

    def run() -> subprocess.CompletedProcess[str]:
        # The development environment's unrelated plugins (slow to import) are left out; sessionflow's is not.
        others = ("-p", "no:hypothesispytest", "-p", "no:schemathesis", "-p", "no:anyio")
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *others],
                              cwd=project, env=env, capture_output=True, text=True, timeout=180)

    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert not list(project.rglob("conftest.py"))


def test_importing_the_plugin_is_cheap() -> None:
    heavy = "('pydantic', 'sqlalchemy', 'apscheduler', 'freezegun', 'time_machine', 'statemachine', 'alembic')"
    for module, also in (("sessionflow.testing", "('pytest',)"), ("sessionflow.pytest_plugin", "()")):
        code = f"import sys, {module}; print(sorted(m for m in {heavy} + {also} if m in sys.modules))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                check=True)
        assert result.stdout.strip() == "[]", module



# ---------------------------------------------------------------- freezegun and time-machine


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "memory" else f"sqlite:///{tmp_path / 'frozen.db'}"


def _manager(url: str | None) -> SessionManager:
    return SessionManager.in_memory() if url is None else SessionManager.open(url)


def test_the_system_clock_follows_freezegun(store_url: str | None) -> None:
    freezegun = pytest.importorskip("freezegun")
    start = datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
    with freezegun.freeze_time(start) as frozen, _manager(store_url) as manager:
        assert SystemClock().now() == start
        a = manager.create(performer_id="u", ttl=timedelta(minutes=10))
        b = manager.create(performer_id="u", ttl=timedelta(minutes=20))
        assert a.created_at == start
        frozen.tick(timedelta(minutes=10) - timedelta(milliseconds=1))
        assert manager.expire_sessions() == 0
        frozen.tick(timedelta(milliseconds=1))
        assert manager.expire_sessions() == 1  # exactly as at that instant
        assert expired_at(manager, a.id) == [("system", start + timedelta(minutes=10))]
        frozen.move_to(start + timedelta(hours=1))
        assert manager.get(b.id).status is SessionStatus.EXPIRED  # lazy expiry follows the frozen clock too
        assert expired_at(manager, b.id) == [("system", start + timedelta(hours=1))]


def test_the_system_clock_follows_time_machine(store_url: str | None) -> None:
    time_machine = pytest.importorskip("time_machine")
    start = datetime(2031, 3, 1, 9, 30, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller, _manager(store_url) as manager:
        assert SystemClock().now() == start
        s = manager.create(performer_id="u", ttl=timedelta(minutes=30))
        traveller.shift(timedelta(minutes=29))
        assert manager.expire_sessions() == 0
        assert manager.touch(s.id, performer_id="u").expires_at == start + timedelta(minutes=59)
        traveller.shift(timedelta(minutes=30))
        assert manager.expire_sessions() == 1
        assert expired_at(manager, s.id) == [("system", start + timedelta(minutes=59))]


def test_a_frozen_sweep_equals_a_sweep_at_that_instant() -> None:
    freezegun = pytest.importorskip("freezegun")
    instant = T0 + timedelta(minutes=15)
    outcomes = []
    for frozen_clock in (True, False):
        clock = ManualClock(T0)
        with freezegun.freeze_time(T0) as frozen, SessionManager.in_memory(clock=None if frozen_clock else clock) as m:
            ids = [m.create(performer_id="u", ttl=timedelta(minutes=k)).id for k in (5, 15, 16, 30)]
            if frozen_clock:
                frozen.move_to(instant)
                count = m.expire_sessions()
            else:
                count = m.expire_sessions(now=instant)
            outcomes.append((count, [(m.store.get(sid).status, expired_at(m, sid))  # type: ignore[union-attr]
                                     for sid in ids]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 2
