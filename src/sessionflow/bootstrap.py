"""The synchronous facade and its constructors: builds stores and managers from explicit arguments.

:class:`SessionManager` here is the public facade (``sessionflow.SessionManager``): the application's
:class:`~sessionflow.application.manager.ManagerCore` with the constructors that open a store
(:meth:`~SessionManager.open`, :meth:`~SessionManager.in_memory`, :meth:`~SessionManager.from_settings`) and the
default waker (:class:`~sessionflow.adapters.apscheduler.ApschedulerWaker`). A store is opened from its URL by
the wiring it shares with the asyncio facade (:mod:`sessionflow.stores.wiring`), through the backend the URL's
scheme names (:mod:`sessionflow.stores`). Nothing here reads the environment; the CLI and the HTTP app do that
and pass the values in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar
from uuid import UUID

from sessionflow.adapters import log_fields
from sessionflow.application import manager
from sessionflow.application.ports import EventStore
from sessionflow.stores.redis import create_redis_store, is_redis_url
from sessionflow.stores.sql import DEFAULT_URL, create_engine, is_in_memory_url
from sessionflow.stores.wiring import FacadeWiring, check_retries, plan, settings_options

__all__ = ["DEFAULT_URL", "SessionManager", "build", "check_retries", "create_engine", "create_redis_store",
           "create_store", "from_settings", "is_in_memory_url", "is_redis_url"]

log_fields.install()  # sessionflow's log records carry the session, record, trace and span ids

if TYPE_CHECKING:
    from sessionflow.application.ports import Waker
    from sessionflow.application.tracing import Tracing
    from sessionflow.diagram import SessionDiagram
    from sessionflow.settings import Settings


class SessionManager(FacadeWiring, manager.ManagerCore):
    """Drives sessions through their lifecycle: the facade embedding programs use.

    Build one from a store (``SessionManager(store, ...)``, the arguments of
    :class:`sessionflow.application.manager.ManagerCore`), or open one with :meth:`in_memory`,
    :meth:`open` or :meth:`from_settings`. :meth:`start_timeouts` without a waker starts an
    :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker`, which also follows the store's change
    watcher: writes of other processes wake it (PostgreSQL's ``NOTIFY``; an SQLite file polled every
    :attr:`sqlite_watch_interval` seconds).
    """

    @classmethod
    def in_memory(cls, **options: Any) -> Self:
        """A manager over a fresh :class:`~sessionflow.adapters.memory.InMemoryEventStore`."""
        from sessionflow.adapters.memory import InMemoryEventStore

        return cls(InMemoryEventStore(), **options)

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> Self:
        """A manager over a durable store (default: ``sqlite:///./sessionflow.db``): a SQLAlchemy URL,
        ``redis://host:port/db`` for the Redis store (the ``redis`` extra), or a URL of a scheme a backend
        package adds (:mod:`sessionflow.stores`).

        The schema is brought up to date unless ``migrate=False``. Other options are those of the
        constructor plus the store's (``pool_size``, ``echo``, ``redis_prefix``, ``retries``, ...); see
        :func:`build`. A write whose connection is lost after it was sent and that cannot be looked up within
        ``retries`` reconnections raises :class:`~sessionflow.errors.OutcomeUnknown` (see ``docs/errors.md``).
        """
        return build(url, manager_class=cls, **options)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Self:
        """A manager configured by ``settings`` (database, timeouts, policies); see :func:`from_settings`.
        ``options`` override or add constructor arguments."""
        return from_settings(settings, manager_class=cls, **options)

    def diagram(self, session_id: UUID | str, *, format: str = "svg") -> SessionDiagram:
        """The session drawn on its lifecycle (the version it runs under), its current state and the path it
        took marked: ``format`` ``"svg"`` (laid out by Graphviz's ``dot``; plain text when ``dot`` is missing —
        the result's ``format`` says which), ``"dot"`` or ``"text"``. Raises
        :class:`~sessionflow.errors.SessionNotFound` as :meth:`get` does."""
        from sessionflow.application.validation import check_choice
        from sessionflow.diagram import SESSION_FORMATS, session_diagram

        check_choice(format, "format", SESSION_FORMATS)
        session = self.get(session_id)
        machine = self.registry.get(session.lifecycle, session.lifecycle_version).machine
        return session_diagram(machine, session.status, self.history(session.id), format)

    def _default_tracing(self) -> Tracing:
        from sessionflow.adapters.otel_lazy import LazyOtelTracing  # imports no OpenTelemetry until it is used

        return LazyOtelTracing()

    def _new_waker(self, cleanup_interval: timedelta) -> Waker:
        from sessionflow.adapters.apscheduler import ApschedulerWaker  # the scheduler only when asked for

        return ApschedulerWaker(cleanup_interval=cleanup_interval)

    def close(self) -> None:
        """Stop the waker if running, stop the change watcher and release the store (if the manager owns
        it). Idempotent."""
        try:
            super().close()
        finally:
            watcher = self._release_watcher()
            if watcher is not None:
                watcher.stop()


M = TypeVar("M", bound=manager.ManagerCore)


def create_store(url: str | None = None, *, migrate: bool = True, cache_size: int = 10_000,
                 retries: int | None = None, **options: Any) -> EventStore:
    """The store ``url`` names (default :data:`DEFAULT_URL`), opened by the backend of its scheme
    (:mod:`sessionflow.stores`): a :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore` for SQLite and
    PostgreSQL, its schema brought up to date unless ``migrate=False`` (``options``: :func:`create_engine`'s), a
    :class:`~sessionflow.adapters.redis.RedisEventStore` for Redis (``options``: the ``redis_…`` ones), or the
    store of a backend package. ``retries``: reconnections after a lost connection (default 4 on SQL, 6 on
    Redis). Raises :class:`~sessionflow.errors.StoreError` if the database is unreachable, and ``TypeError`` for
    an option the store does not take.
    """
    opening = plan(url, {"migrate": migrate, "cache_size": cache_size, "retries": retries, **options})
    if opening.manager_options:
        unknown = ", ".join(sorted(opening.manager_options))
        raise TypeError(f"create_store() got options the store of this URL does not take: {unknown}")
    return opening.open()


def build(url: str | None = None, *, manager_class: type[M] = SessionManager,  # type: ignore[assignment]
          migrate: bool = True, cache_size: int = 10_000, retries: int | None = None, **options: Any) -> M:
    """A manager over a durable store on ``url``: the store's options (the engine's for SQL, the ``redis_…`` ones
    for Redis, those a backend package's factory names) go to the store's factory (:mod:`sessionflow.stores`),
    the rest to the manager's constructor. ``retries``: how many times the store reconnects after a lost
    connection before an operation fails (default 4 on SQL, 6 on Redis; ``redis_retries`` is the Redis store's
    older name)."""
    opening = plan(url, {"migrate": migrate, "cache_size": cache_size, "retries": retries, **options})
    store = opening.open()
    try:
        return manager_class(store, **opening.manager_options)
    except BaseException:
        store.close()
        raise


def from_settings(settings: Settings, *, manager_class: type[M] = SessionManager,  # type: ignore[assignment]
                  **options: Any) -> M:
    """A manager configured by ``settings``: its database, timeouts and policies, with an (unstarted)
    :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` sweeping every
    ``settings.session.cleanup_interval_seconds``; call ``start_timeouts()`` to start it.

    ``options`` override the settings or add to them (``clock``, ``migrate``, engine options, ``waker``...).
    Reads nothing from the environment: build ``settings`` with ``Settings.from_env()`` in an entry point.
    """
    from sessionflow.adapters.apscheduler import ApschedulerWaker

    merged = settings_options(settings, options)
    if "waker" not in merged:
        merged["waker"] = ApschedulerWaker(cleanup_interval=settings.session.cleanup_interval)
    return build(settings.database_url, manager_class=manager_class, **merged)
