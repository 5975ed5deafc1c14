"""The stores by URL scheme (``sessionflow.stores``): a built-in scheme never reads the installed packages'
entry points; a scheme registered in the process, or declared by an entry point of the group
``sessionflow.stores``, is opened by its factory through every way of opening a store (``SessionManager.open``,
``AsyncSessionManager.open``, ``create_store``, the command line's ``--db``); an unknown scheme is refused with
the typed error of a bad URL. Also: the capabilities a store declares by type (its change watcher, its runner)
are what the facades use."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from sessionflow import AsyncSessionManager, SessionManager
from sessionflow.adapters.aio import GreenletRunner, ThreadRunner
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application.ports import AwaitsIO, EventStore, WatchesChanges
from sessionflow.application.watching import NoticeCallback
from sessionflow.bootstrap import create_store
from sessionflow.entrypoints.cli import app
from sessionflow.errors import InvalidInput
from sessionflow.stores import ENTRY_POINT_GROUP, backend_for, register_store


class Calls:
    """A toy backend's factory that records how it was called and hands out in-memory stores."""

    def __init__(self, store_class: type[InMemoryEventStore] = InMemoryEventStore) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stores: list[InMemoryEventStore] = []
        self.store_class = store_class

    def __call__(self, url: str, *, toy_flag: int = 0, **options: Any) -> EventStore:
        self.calls.append((url, {"toy_flag": toy_flag, **options}))
        store = self.store_class()
        self.stores.append(store)
        return store


@pytest.fixture
def toy() -> Iterator[Calls]:
    """The scheme ``toy`` registered in this process for the test."""
    factory = Calls()
    unregister = register_store("toy", factory)
    yield factory
    unregister()


@pytest.fixture
def no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """sessionflow calling ``importlib.metadata.entry_points`` (any group), or anything reading the group
    ``sessionflow.stores``, fails the test; other libraries read their own groups as usual (pydantic and Alembic
    read theirs when first used)."""
    original = importlib.metadata.entry_points

    def scan(**selection: Any) -> Any:
        caller = str(sys._getframe(1).f_globals.get("__name__", ""))
        if selection.get("group") == ENTRY_POINT_GROUP or caller.split(".")[0] == "sessionflow":
            raise AssertionError(f"entry points read by {caller}: {selection}")
        return original(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", scan)


class FakeEntryPoint:
    def __init__(self, value: str, loaded: Callable[[], Any]) -> None:
        self.value = value
        self._loaded = loaded

    def load(self) -> Any:
        return self._loaded()


def entry_points_of(monkeypatch: pytest.MonkeyPatch, points: dict[str, list[FakeEntryPoint]]) -> list[str]:
    """Installed entry points of the group: ``points`` by name; returns the names looked up."""
    looked_up: list[str] = []

    def entry_points(*, group: str, name: str) -> list[FakeEntryPoint]:
        assert group == ENTRY_POINT_GROUP
        looked_up.append(name)
        return points.get(name, [])

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return looked_up


# ---------------------------------------------------------------------- built-in schemes


@pytest.mark.usefixtures("no_scan")
@pytest.mark.parametrize("url", ["sqlite:///x.db", "SQLITE:///x.db", "sqlite+pysqlite:///x.db", "sqlite://",
                                 "postgresql://u@h/db", "postgresql+psycopg://u@h/db", "postgresql+asyncpg://h/d",
                                 "redis://h:6379/0", "rediss://h/0", "unix:///tmp/redis.sock", "not a url"])
def test_a_built_in_scheme_reads_no_entry_point(url: str) -> None:
    assert backend_for(url).factory is not None


@pytest.mark.usefixtures("no_scan")
def test_opening_a_built_in_store_reads_no_entry_point(tmp_path: Path) -> None:
    with SessionManager.open(f"sqlite:///{tmp_path / 'a.db'}") as manager:
        manager.create(performer_id="u")
    with SessionManager.open("sqlite://") as manager:
        assert manager.count() == 0
    create_store(f"sqlite:///{tmp_path / 'a.db'}").close()

    async def main() -> None:
        async with AsyncSessionManager.open(f"sqlite:///{tmp_path / 'a.db'}") as manager:
            assert await manager.count() == 1

    asyncio.run(main())


def test_no_entry_point_read_is_not_vacuous(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above would pass if nothing ever read entry points: an unknown scheme does."""
    looked_up = entry_points_of(monkeypatch, {})
    with pytest.raises(InvalidInput):
        backend_for("elsewhere://h")
    assert looked_up == ["elsewhere"]


# ---------------------------------------------------------------------- an unknown scheme


def test_an_unknown_scheme_is_a_typed_error_naming_the_scheme_and_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    entry_points_of(monkeypatch, {})
    with pytest.raises(InvalidInput) as raised:
        SessionManager.open("nowhere://user:secret@host/db")
    assert raised.value.field == "url"
    assert "'nowhere'" in raised.value.message
    assert "sessionflow.stores" in raised.value.message
    assert "secret" not in raised.value.message
    with pytest.raises(InvalidInput, match="'nowhere'"):
        create_store("nowhere://host")

    async def main() -> None:
        with pytest.raises(InvalidInput, match="'nowhere'"):
            await AsyncSessionManager.open("nowhere://host")

    asyncio.run(main())


# ---------------------------------------------------------------------- registered in the process


def test_a_registered_scheme_opens_through_its_factory_with_the_store_options(toy: Calls) -> None:
    with SessionManager.open("toy://here/x", cache_size=5, toy_flag=3, single_active_per_user=True) as manager:
        assert manager.store is toy.stores[-1]
        assert manager.single_active_per_user  # an option the factory does not name goes to the manager
    assert toy.calls == [("toy://here/x", {"toy_flag": 3, "cache_size": 5, "retries": None, "migrate": True})]


def test_the_factory_gets_the_checked_retries_and_migrate(toy: Calls) -> None:
    SessionManager.open("TOY://h", retries=2, migrate=False).close()
    assert toy.calls[-1][1] == {"toy_flag": 0, "cache_size": 10_000, "retries": 2, "migrate": False}
    with pytest.raises(InvalidInput) as raised:
        SessionManager.open("toy://h", retries=-1)
    assert raised.value.field == "retries"
    assert len(toy.calls) == 1  # refused before the store was opened


def test_an_option_neither_the_store_nor_the_manager_takes_is_refused(toy: Calls) -> None:
    with pytest.raises(TypeError, match="pool_size"):
        SessionManager.open("toy://h", pool_size=3)
    assert toy.stores[-1].ping() is False  # the store opened for nothing was closed
    with pytest.raises(TypeError, match="nonsense"):
        create_store("toy://h", nonsense=1)
    assert len(toy.calls) == 1  # create_store refuses before opening


def test_create_store_opens_a_registered_scheme(toy: Calls) -> None:
    store = create_store("toy://h", toy_flag=7)
    assert store is toy.stores[-1]
    assert toy.calls[-1][1]["toy_flag"] == 7


def test_the_asyncio_facade_runs_a_registered_store_on_a_worker_thread(toy: Calls) -> None:
    async def main() -> None:
        async with AsyncSessionManager.open("toy://h", toy_flag=1) as manager:
            assert manager.store is toy.stores[-1]
            assert isinstance(manager._runner, ThreadRunner)
            session = await manager.create(performer_id="u")
            assert (await manager.get(session.id)).version == 1

    asyncio.run(main())
    assert toy.calls[-1][1]["toy_flag"] == 1


class LoopStore(InMemoryEventStore):
    """A toy store that declares its I/O awaits the event loop."""

    awaits_io: ClassVar[bool] = True


def test_a_store_that_awaits_the_loop_runs_in_greenlets_on_it() -> None:
    factory = Calls(LoopStore)
    unregister = register_store("looped", factory)
    try:
        async def main() -> None:
            async with AsyncSessionManager.open("looped://h") as manager:
                assert isinstance(manager.store, AwaitsIO)
                assert isinstance(manager._runner, GreenletRunner)

        asyncio.run(main())
    finally:
        unregister()


def test_the_command_line_opens_a_registered_scheme(toy: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["--db", "toy://cli", "create", "--json"], env={"SESSIONFLOW_PERFORMER": "a"})
    assert result.exit_code == 0, result.output
    assert toy.calls
    assert toy.calls[-1][0] == "toy://cli"
    assert json.loads(result.stdout)["status"] == "pending"


def test_register_store_refuses_built_in_and_malformed_schemes() -> None:
    factory = Calls()
    for scheme in ("sqlite", "postgresql+psycopg", "redis", "rediss", "unix", "sqlite+foo"):
        with pytest.raises(InvalidInput, match="built-in") as raised:
            register_store(scheme, factory)
        assert raised.value.field == "scheme"
    for scheme in ("", "1toy", "to y", "toy://", None):
        with pytest.raises(InvalidInput) as raised:
            register_store(scheme, factory)  # type: ignore[arg-type]
        assert raised.value.field == "scheme"
    with pytest.raises(InvalidInput) as raised:
        register_store("toy", "not callable")  # type: ignore[arg-type]
    assert raised.value.field == "factory"


def test_taking_a_registration_back_restores_the_one_it_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    entry_points_of(monkeypatch, {})
    first, second = Calls(), Calls()
    undo_first = register_store("twice", first)
    undo_second = register_store("twice", second)
    assert backend_for("twice://h").factory is second
    undo_second()
    assert backend_for("twice://h").factory is first
    undo_first()
    with pytest.raises(InvalidInput, match="'twice'"):
        backend_for("twice://h")


def test_a_registration_comes_before_an_entry_point(toy: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = entry_points_of(monkeypatch, {"toy": [FakeEntryPoint("elsewhere:factory", Calls)]})
    assert backend_for("toy://h").factory is toy
    assert looked_up == []


# ---------------------------------------------------------------------- declared by an entry point


def test_an_entry_point_names_the_factory_of_its_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = Calls()
    looked_up = entry_points_of(monkeypatch, {"ep": [FakeEntryPoint("toy_backend:factory", lambda: factory)]})
    with SessionManager.open("ep://h", toy_flag=2) as manager:
        assert manager.store is factory.stores[-1]
    assert looked_up == ["ep"]
    assert factory.calls == [("ep://h", {"toy_flag": 2, "cache_size": 10_000, "retries": None, "migrate": True})]


def test_an_entry_point_that_cannot_be_loaded_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise ImportError("No module named 'toy_backend'")

    entry_points_of(monkeypatch, {"ep": [FakeEntryPoint("toy_backend:factory", broken)],
                                  "flat": [FakeEntryPoint("toy_backend:VALUE", lambda: 42)],
                                  "two": [FakeEntryPoint("a:f", Calls), FakeEntryPoint("b:f", Calls)]})
    with pytest.raises(InvalidInput, match=r"toy_backend:factory.*No module named") as raised:
        SessionManager.open("ep://h")
    assert raised.value.field == "url"
    with pytest.raises(InvalidInput, match="not callable"):
        SessionManager.open("flat://h")
    with pytest.raises(InvalidInput, match="a:f, b:f"):
        SessionManager.open("two://h")


def test_a_factory_may_name_its_url_parameter_as_it_likes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def factory(location: str, /, **options: Any) -> EventStore:
        seen.update(options, location=location)
        return InMemoryEventStore()

    def by_keyword(uri: str, *, depth: int = 0, **options: Any) -> EventStore:
        seen.update(options, uri=uri, depth=depth)
        return InMemoryEventStore()

    entry_points_of(monkeypatch, {"a": [FakeEntryPoint("m:a", lambda: factory)],
                                  "b": [FakeEntryPoint("m:b", lambda: by_keyword)]})
    assert backend_for("a://h").options == frozenset()
    assert backend_for("b://h").options == frozenset({"depth"})
    SessionManager.open("b://h", depth=4).close()
    assert seen == {"uri": "b://h", "depth": 4, "cache_size": 10_000, "retries": None, "migrate": True}


# ---------------------------------------------------------------------- capabilities declared by type


class Watcher:
    """A change watcher that only counts starts and stops."""

    def __init__(self) -> None:
        self.started = self.stopped = 0

    def subscribe(self, callback: NoticeCallback) -> Callable[[], None]:
        return lambda: None

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1


class WatchedStore(InMemoryEventStore):
    """A toy store whose database can be watched."""

    def __init__(self) -> None:
        super().__init__()
        self.watchers: list[tuple[Watcher, float | None]] = []

    def change_watcher(self, *, poll_interval: float | None) -> Watcher:
        watcher = Watcher()
        self.watchers.append((watcher, poll_interval))
        return watcher


def test_a_store_that_declares_a_change_watcher_gets_it_built_started_shared_and_stopped() -> None:
    store = WatchedStore()
    assert isinstance(store, WatchesChanges)
    assert not isinstance(InMemoryEventStore(), WatchesChanges)
    manager = SessionManager(store)
    manager.sqlite_watch_interval = 0.5
    watcher = manager._new_watcher()
    assert manager._new_watcher() is watcher
    assert store.watchers == [(watcher, 0.5)]
    assert isinstance(watcher, Watcher)
    assert watcher.started == 1
    manager.close()
    assert watcher.stopped == 1
    assert manager._new_watcher() is None

    async def main() -> Watcher:
        async_store = WatchedStore()
        manager = AsyncSessionManager(async_store)
        watcher = manager._new_watcher()
        assert manager._new_watcher() is watcher
        assert async_store.watchers == [(watcher, 0.1)]
        await manager.close()
        assert manager._new_watcher() is None
        assert isinstance(watcher, Watcher)
        return watcher

    watcher = asyncio.run(main())
    assert (watcher.started, watcher.stopped) == (1, 1)
