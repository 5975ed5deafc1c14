"""Drive an :class:`~sessionflow.AsyncSessionManager` from synchronous tests, so that the contract suite runs
unchanged on the asyncio facade.

:class:`LoopThread` runs an event loop on a background thread. :class:`SyncBridge` looks like a
``SessionManager``: each coroutine method of the async manager becomes a method that runs the coroutine on that
loop and waits for it — from any number of test threads at once, so the concurrency tests become concurrent
tasks on the loop. Called from inside the manager's own work (a subscriber, a handler), it calls the
synchronous manager directly, as the manager's runner allows there. ``store`` gives the store the same way.
:func:`async_managers` is the ``make_manager`` fixture of the asyncio backends: such bridges on one loop.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from sessionflow import AsyncSessionManager, SessionManager

__all__ = ["LoopThread", "SyncBridge", "async_managers"]

T = TypeVar("T")

#: Longest wait for one call (a hung call fails the test instead of hanging the run).
CALL_TIMEOUT = 120.0


class LoopThread:
    """An asyncio event loop running on a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="async-bridge-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (not from the loop's own thread)."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a blocking call from the event loop's own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            self.loop.close()


class _Store:
    """The async manager's store, each method run where the manager's work runs."""

    def __init__(self, bridge: SyncBridge) -> None:
        self._bridge = bridge

    def __getattr__(self, name: str) -> Any:
        bridge = self._bridge
        manager = bridge.async_manager
        attribute = getattr(manager.store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if manager.runner.inside():
                return getattr(manager.store, name)(*args, **kwargs)
            return bridge.loop.run(manager.run_sync(lambda m: getattr(m.store, name)(*args, **kwargs)))

        return call


class SyncBridge:
    """A synchronous facade of ``manager`` (see the module's docstring)."""

    def __init__(self, manager: AsyncSessionManager, loop: LoopThread) -> None:
        self.async_manager = manager
        self.loop = loop
        self.store = _Store(self)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.async_manager, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        sync_method = getattr(self.async_manager.sync_manager, name, None)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.async_manager.runner.inside() and sync_method is not None:
                return sync_method(*args, **kwargs)
            if name == "consume" and isinstance(kwargs.get("stop"), threading.Event):
                return self._consume(attribute, args, kwargs)
            return self.loop.run(attribute(*args, **kwargs))

        return call

    def _consume(self, consume: Callable[..., Coroutine[Any, Any, int]], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> int:
        """``consume`` with a ``threading.Event`` to stop it: an ``asyncio.Event`` set when it is."""
        stop: threading.Event = kwargs.pop("stop")
        loop = self.loop.loop

        async def run() -> int:
            event = asyncio.Event()
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    if stop.wait(0.01):
                        loop.call_soon_threadsafe(event.set)
                        return

            watcher = loop.run_in_executor(None, watch)
            try:
                return await consume(*args, stop=event, **kwargs)
            finally:
                done.set()
                await watcher

        return self.loop.run(run())

    def __enter__(self) -> SyncBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.loop.run(self.async_manager.close())


def async_managers(database_url: str | None, store_options: frozenset[str] = frozenset()
                   ) -> Iterator[Callable[..., SessionManager]]:
    """A ``make_manager`` factory on the asyncio facade, for one test: each manager a :class:`SyncBridge` to an
    ``AsyncSessionManager`` on ``database_url`` (in memory when ``None``), all on one event loop, closed with it
    afterwards. Options named in ``store_options`` go to the store; ``store_of=manager`` shares that manager's
    store."""
    loop = LoopThread()
    bridges: list[SyncBridge] = []

    def factory(**options: Any) -> SessionManager:
        chosen = {k: options.pop(k) for k in list(options) if k in store_options}
        other = options.pop("store_of", None)
        if other is not None:
            manager = AsyncSessionManager(other.async_manager.store, owns_store=False, **options)
        elif database_url is None:
            manager = AsyncSessionManager.in_memory(**options)
        else:
            async def open_() -> AsyncSessionManager:
                return await AsyncSessionManager.open(database_url, **chosen, **options)

            manager = loop.run(open_())
        bridge = SyncBridge(manager, loop)
        bridges.append(bridge)
        return bridge  # type: ignore[return-value]  # a SessionManager look-alike

    try:
        yield factory
        for bridge in bridges:
            bridge.close()
    finally:
        loop.close()
