"""The synchronous and the asyncio facades offer one API: every public name of ``sessionflow.SessionManager`` is
on ``sessionflow.AsyncSessionManager`` and the reverse, with the same parameters — names, order, kinds and
defaults; the annotations may differ (``threading.Event`` and ``asyncio.Event``, ``Self`` and ``Opening[Self]``).
A method's twin is a coroutine function, a property's twin a property or an attribute, a classmethod's twin a
classmethod. What one facade has and the other has not is listed below, each with its reason.

A new method or parameter on one facade fails here until its twin is written (or it is listed with a reason).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import AsyncSessionManager, InvalidInput, SessionManager

#: Public names only the asyncio facade has, and why.
ONLY_ASYNC: dict[str, str] = {
    "follow": "the feed as an async iterator (`async for event in mgr.follow(name)`); the synchronous facade "
              "follows the feed with consume(name, handler, follow=True)",
    "run_sync": "runs a function of the synchronous manager where the asyncio facade's work runs; the synchronous "
                "facade is that manager and is called directly",
    "runner": "where the asyncio facade runs the synchronous work (greenlets on the loop, or a worker thread)",
    "sync_manager": "the synchronous manager the asyncio facade drives",
}

#: Public names only the synchronous facade has, and why.
ONLY_SYNC: dict[str, str] = {}

#: Methods whose asyncio twin is not a coroutine function, and why.
NOT_COROUTINES: dict[str, str] = {
    "subscribe": "subscribing does no I/O: it returns the unsubscribe function at once",
}

#: The synchronous facade's special methods and their asyncio twins (the context manager).
SPECIAL_TWINS: dict[str, str] = {"__enter__": "__aenter__", "__exit__": "__aexit__"}

#: Constructor parameters only the asyncio facade names, and why. The asyncio constructor passes the others to
#: the synchronous manager it builds (``**options``).
CONSTRUCTOR_ONLY_ASYNC: dict[str, str] = {
    "runner": "where the synchronous work runs: greenlets on the loop or a worker thread",
}

#: Options of the synchronous constructor the asyncio one refuses when true (``InvalidInput``), and why.
CONSTRUCTOR_REFUSED: dict[str, str] = {
    "group_commit": "group commit shares the commits of threads; asyncio code commits many changes at once with "
                    "create_many() and send_many()",
}


def _public_names(cls: type, instance: object) -> set[str]:
    """The public names of ``cls`` and of an instance of it (attributes set by the constructor included)."""
    return {name for name in set(dir(cls)) | set(vars(instance)) if not name.startswith("_")}


def _kind(cls: type, name: str) -> str:
    """``classmethod``, ``staticmethod``, ``method``, ``coroutine``, ``async generator`` or ``data`` (a property,
    a class attribute or an attribute of the instance)."""
    try:
        raw = inspect.getattr_static(cls, name)
    except AttributeError:
        return "data"  # set by the constructor
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if inspect.iscoroutinefunction(raw):
        return "coroutine"
    if inspect.isasyncgenfunction(raw):
        return "async generator"
    if inspect.isfunction(raw):
        return "method"
    return "data"


def _parameters(cls: type, name: str) -> list[tuple[str, str, object]]:
    """What a caller depends on in a parameter list: each parameter's name, kind and default, in order."""
    signature = inspect.signature(getattr(cls, name))
    return [(p.name, p.kind.name, p.default) for p in signature.parameters.values()]


def parity_problems(sync_cls: type, async_cls: type, sync_instance: object, async_instance: object, *,
                    only_sync: Mapping[str, str] = ONLY_SYNC, only_async: Mapping[str, str] = ONLY_ASYNC,
                    not_coroutines: Mapping[str, str] = NOT_COROUTINES) -> list[str]:
    """Every difference between the two facades that the lists (by default, those above) do not explain, one
    line each."""
    problems: list[str] = []
    sync_names = _public_names(sync_cls, sync_instance)
    async_names = _public_names(async_cls, async_instance)
    problems += [f"{name}: on {sync_cls.__name__} only (write its twin or list it in ONLY_SYNC)"
                 for name in sorted(sync_names - async_names - set(only_sync))]
    problems += [f"{name}: on {async_cls.__name__} only (write its twin or list it in ONLY_ASYNC)"
                 for name in sorted(async_names - sync_names - set(only_async))]
    pairs = [(name, name) for name in sorted(sync_names & async_names)] + sorted(SPECIAL_TWINS.items())
    for sync_name, async_name in pairs:
        sync_kind, async_kind = _kind(sync_cls, sync_name), _kind(async_cls, async_name)
        expected = {sync_kind} if sync_kind != "method" else {"method" if sync_name in not_coroutines else "coroutine"}
        if async_kind not in expected:
            problems.append(f"{async_name}: a {async_kind} on {async_cls.__name__}, expected a "
                            f"{' or '.join(sorted(expected))} (the twin of {sync_kind} {sync_name})")
            continue
        if sync_kind == "data":
            continue
        sync_parameters, async_parameters = _parameters(sync_cls, sync_name), _parameters(async_cls, async_name)
        if sync_parameters != async_parameters:
            problems.append(f"{sync_name}: parameters differ: {sync_cls.__name__}{_show(sync_parameters)} and "
                            f"{async_cls.__name__}{_show(async_parameters)}")
    return problems


def _show(parameters: list[tuple[str, str, object]]) -> str:
    shown = [f"{name} ({kind}{'' if default is inspect.Parameter.empty else f' = {default!r}'})"
             for name, kind, default in parameters]
    return "(" + ", ".join(shown) + ")"


@pytest.fixture(scope="module")
def instances() -> Iterator[tuple[SessionManager, AsyncSessionManager]]:
    sync_manager = SessionManager.in_memory()
    async_manager = AsyncSessionManager.in_memory()
    yield sync_manager, async_manager
    sync_manager.close()
    asyncio.run(async_manager.close())


def test_the_facades_have_the_same_names_and_parameters(instances: tuple[SessionManager, AsyncSessionManager]
                                                        ) -> None:
    problems = parity_problems(SessionManager, AsyncSessionManager, *instances)
    assert problems == [], "the facades differ:\n" + "\n".join(problems)


def test_every_listed_exception_is_still_one(instances: tuple[SessionManager, AsyncSessionManager]) -> None:
    """A name listed as one facade's own that both facades have (or neither) is a stale entry."""
    sync_names = _public_names(SessionManager, instances[0])
    async_names = _public_names(AsyncSessionManager, instances[1])
    assert set(ONLY_ASYNC) <= async_names - sync_names
    assert set(ONLY_SYNC) <= sync_names - async_names
    assert all(_kind(AsyncSessionManager, name) == "method" for name in NOT_COROUTINES)
    assert all(reason.strip() for reason in [*ONLY_ASYNC.values(), *ONLY_SYNC.values(), *NOT_COROUTINES.values(),
                                             *CONSTRUCTOR_ONLY_ASYNC.values(), *CONSTRUCTOR_REFUSED.values()])


def test_the_asyncio_constructor_takes_the_synchronous_options() -> None:
    """The asyncio constructor names only parameters the synchronous one has (same kind, same default), besides
    those listed, and passes every other one on to the synchronous manager it builds; it refuses the listed ones
    when true."""
    sync_parameters = inspect.signature(SessionManager).parameters
    async_parameters = inspect.signature(AsyncSessionManager).parameters
    assert set(CONSTRUCTOR_ONLY_ASYNC) <= set(async_parameters) - set(sync_parameters)
    options = [p for p in async_parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert [p.name for p in options] == ["options"]
    for name, parameter in async_parameters.items():
        if name in CONSTRUCTOR_ONLY_ASYNC or parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        assert name in sync_parameters, f"{name}: only the asyncio constructor takes it"
        twin = sync_parameters[name]
        assert (parameter.kind, parameter.default) == (twin.kind, twin.default), name
    named = {name for name in async_parameters if name not in CONSTRUCTOR_ONLY_ASYNC}
    forwarded = {name: p.default for name, p in sync_parameters.items() if name not in named}
    assert forwarded  # clock, default_ttl, ...: accepted, with the synchronous defaults, through **options

    async def build() -> None:
        manager = AsyncSessionManager.in_memory(**forwarded)
        try:
            assert manager.default_ttl == sync_parameters["default_ttl"].default
        finally:
            await manager.close()
        for name in CONSTRUCTOR_REFUSED:
            assert name in forwarded
            with pytest.raises(InvalidInput) as refused:
                AsyncSessionManager.in_memory(**{name: True})
            assert refused.value.field == name

    asyncio.run(build())


# ---------------------------------------------------------------------------------------------------- the check


class _Sync:
    flag = True

    def __init__(self) -> None:
        self.limit = 3

    def __enter__(self) -> _Sync:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, key: str, *, fresh: bool = False) -> str:
        return key

    def extra(self) -> None:
        return None

    def subscribe(self, callback: object) -> None:
        return None


class _Async:
    flag = True
    limit = 3

    async def __aenter__(self) -> _Async:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self, key: str, *, fresh: bool = True) -> str:
        return key

    def subscribe(self, callback: object) -> None:
        return None

    async def twinless(self, when: timedelta) -> Any:
        return when


def test_the_check_finds_a_missing_twin_a_changed_default_and_a_wrong_kind() -> None:
    problems = parity_problems(_Sync, _Async, _Sync(), _Async())
    assert [problem.split(":")[0] for problem in problems] == ["extra", "twinless", "read"]
    assert "on _Sync only" in problems[0]
    assert "on _Async only" in problems[1]
    assert "fresh (KEYWORD_ONLY = False)" in problems[2]
    assert "fresh (KEYWORD_ONLY = True)" in problems[2]

    class _NotAsync:
        flag = True
        limit = 3
        __aenter__ = _Async.__aenter__
        __aexit__ = _Async.__aexit__
        subscribe = _Async.subscribe
        twinless = _Async.twinless

        def read(self, key: str, *, fresh: bool = False) -> str:  # a synchronous twin of a synchronous method
            return key

        async def extra(self) -> None:
            return None

    assert parity_problems(_Sync, _NotAsync, _Sync(), _NotAsync(), only_async={"twinless": "its own"}) == [
        "read: a method on _NotAsync, expected a coroutine (the twin of method read)"]
