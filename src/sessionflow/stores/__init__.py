"""Stores by URL scheme: which factory opens the store a URL names.

``SessionManager.open(url)``, ``AsyncSessionManager.open(url)``, ``create_store(url)`` and the command line's
``--db URL`` all look up the URL's scheme (the part before ``://``) here, in this order:

1. the built-in schemes — ``sqlite`` and ``postgresql`` (each with any ``+driver``), ``redis``, ``rediss`` and
   ``unix`` — open the stores shipped with sessionflow, with no further look-up;
2. a scheme registered in this process by :func:`register_store`;
3. the entry point of that name in the group :data:`ENTRY_POINT_GROUP` (``sessionflow.stores``), which a backend
   package declares in its ``pyproject.toml``. Only then are the installed packages' entry points read (tens
   of milliseconds), so a program on a built-in store never pays for that scan.

A scheme found nowhere is refused with :class:`~sessionflow.errors.InvalidInput` (field ``url``), which names the
scheme and the group.

**A factory** is called ``factory(url, **options)`` and returns an
:class:`~sessionflow.application.ports.EventStore`, ready to use (schema prepared, server answering). It
receives ``cache_size`` (an ``int``, the read cache's size: 0 for none), ``retries`` (an ``int`` from 0 to 100,
reconnections after a lost connection; ``None`` when the caller gave none: the store's own default) and
``migrate`` (a ``bool``: bring the schema up to date), and each option of ``open()`` that it names as a keyword
parameter of its own (``def factory(url, *, toy_path="x", **options)`` receives ``toy_path``); every other
option goes to the manager's constructor. A factory must accept ``**options`` and may ignore what it does not
use: later versions may pass more. It raises :class:`~sessionflow.errors.InvalidInput` for a URL it cannot
read and :class:`~sessionflow.errors.StoreError` when the store cannot be reached. ``docs/architecture.md``
("Adding a backend") shows a backend package step by step.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

from sessionflow.errors import InvalidInput

if TYPE_CHECKING:
    from sessionflow.application.ports import EventStore

__all__ = ["COMMON_OPTIONS", "ENTRY_POINT_GROUP", "Backend", "StoreFactory", "backend_for", "is_builtin",
           "register_store", "scheme_of"]

#: The entry-point group where a package declares the factory of a URL scheme (the entry point's name).
ENTRY_POINT_GROUP = "sessionflow.stores"
#: ``factory(url, **options) -> EventStore``: opens the store a URL names (see the module's docstring).
StoreFactory = Callable[..., "EventStore"]
#: The options every factory receives.
COMMON_OPTIONS = frozenset({"cache_size", "retries", "migrate"})

_SQL_FAMILIES = frozenset({"sqlite", "postgresql"})
_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel"})
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*\Z")  # RFC 3986, lower case

_registered: dict[str, StoreFactory] = {}
_lock = threading.Lock()


class Backend(NamedTuple):
    """What opens the stores of one scheme: its ``factory``, the option names it takes beyond
    :data:`COMMON_OPTIONS`, and (PostgreSQL only) a coroutine that opens the store on an asyncio driver."""

    scheme: str
    factory: StoreFactory
    options: frozenset[str] = frozenset()
    open_async: Callable[..., Awaitable[EventStore]] | None = None


def scheme_of(url: str) -> str:
    """The scheme of ``url`` in lower case: the part before ``://`` (``""`` when there is none)."""
    scheme, separator, _ = url.partition("://")
    return scheme.lower() if separator else ""


def is_builtin(scheme: str) -> bool:
    """Whether ``scheme`` opens a store shipped with sessionflow (``""``, a string that is no URL, goes to the SQL
    store, which tells what is wrong with it)."""
    return scheme == "" or scheme in _REDIS_SCHEMES or scheme.partition("+")[0] in _SQL_FAMILIES


def register_store(scheme: str, factory: StoreFactory) -> Callable[[], None]:
    """Open the URLs of ``scheme`` with ``factory`` in this process (before any entry point of that name);
    returns a function that takes the registration back (restoring the one it replaced, if any).

    ``scheme`` is a URL scheme (letters, digits, ``+``, ``-``, ``.``; case does not matter) that is not built in;
    ``factory(url, **options)`` returns the store (see the module's docstring). Raises
    :class:`~sessionflow.errors.InvalidInput` otherwise.
    """
    key = scheme.lower() if isinstance(scheme, str) else ""
    if not _SCHEME.match(key):
        raise InvalidInput("scheme", f"not a URL scheme: {scheme!r}")
    if is_builtin(key):
        raise InvalidInput("scheme", f"{key!r} is a built-in scheme of sessionflow")
    if not callable(factory):
        raise InvalidInput("factory", "expected a callable: factory(url, **options) -> EventStore")
    with _lock:
        replaced = _registered.get(key)
        _registered[key] = factory

    def unregister() -> None:
        with _lock:
            if _registered.get(key) is factory:
                if replaced is None:
                    del _registered[key]
                else:
                    _registered[key] = replaced

    return unregister


def backend_for(url: str) -> Backend:
    """The backend that opens ``url``: built in, registered, or an installed entry point (in that order)."""
    scheme = scheme_of(url)
    if is_builtin(scheme):
        return _builtin(scheme)
    with _lock:
        factory = _registered.get(scheme)
    if factory is None:
        factory = _entry_point(scheme)
    return Backend(scheme, factory, _keywords(factory))


def _builtin(scheme: str) -> Backend:
    if scheme in _REDIS_SCHEMES:
        from sessionflow.stores import redis

        return Backend(scheme, redis.open_redis, redis.REDIS_OPTIONS | redis.IGNORED_OPTIONS)
    from sessionflow.stores import sql

    postgres = scheme.partition("+")[0] == "postgresql"
    return Backend(scheme, sql.open_sql, sql.ENGINE_OPTIONS, sql.open_postgres_async if postgres else None)


def _entry_point(scheme: str) -> StoreFactory:
    """The factory the installed packages declare for ``scheme`` (reads every package's entry points)."""
    import importlib.metadata

    found = {point.value: point for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=scheme)}
    if not found:
        raise InvalidInput("url", f"no store for the scheme {scheme!r}: sessionflow opens sqlite://, postgresql:// "
                                  "and redis:// (rediss://, unix://) URLs, and those of the schemes packages declare "
                                  f"in the entry-point group {ENTRY_POINT_GROUP!r} or sessionflow.stores."
                                  "register_store() registers")
    if len(found) > 1:
        raise InvalidInput("url", f"the scheme {scheme!r} has several entry points in {ENTRY_POINT_GROUP!r}: "
                                  + ", ".join(sorted(found)))
    (point,) = found.values()
    try:
        factory = point.load()
    except Exception as error:  # whatever importing the backend's module raised
        raise InvalidInput("url", f"the store of the scheme {scheme!r} ({point.value}) cannot be loaded: "
                                  f"{type(error).__name__}: {error}") from error
    if not callable(factory):
        raise InvalidInput("url", f"the entry point {point.value!r} of the scheme {scheme!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _keywords(factory: StoreFactory) -> frozenset[str]:
    """The option names ``factory`` takes as keyword parameters of its own (beyond the common ones)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the common options only
        return frozenset()
    named = [p for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                  inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_ONLY)]
    if named and named[0].kind is not inspect.Parameter.KEYWORD_ONLY:
        named = named[1:]  # the URL
    return frozenset(p.name for p in named if p.kind is not inspect.Parameter.POSITIONAL_ONLY) - COMMON_OPTIONS
