"""``AsyncManagerBase``: what every part of the asyncio facade shares.

The synchronous manager doing the work, the :class:`~sessionflow.application.async_support.Runner` it runs on,
and ``_call``, which hands one call of the synchronous manager to the runner (refused once the facade is closed):
the one step between a coroutine of :class:`~sessionflow.application.async_manager.AsyncManagerCore` and the
synchronous method it awaits. Also the hook that builds the store's change watcher, which the feed's consumers
and the waker follow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sessionflow.application.async_support import Runner
from sessionflow.application.manager import ManagerCore
from sessionflow.errors import StoreError

__all__ = ["AsyncManagerBase"]

T = TypeVar("T")


class AsyncManagerBase:
    """The state the parts of :class:`~sessionflow.application.async_manager.AsyncManagerCore` share (it builds
    it), and the call that runs the synchronous manager's work."""

    _sync: ManagerCore
    _runner: Runner
    _closed: bool

    def _new_watcher(self) -> Any:
        """The change watcher reporting other processes' commits (``subscribe(callback) -> unsubscribe``), or
        ``None`` (here: none; :class:`sessionflow.AsyncSessionManager` builds one for its store). The waker and
        the feed's consumers follow it."""
        return None

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` run by the runner; :class:`~sessionflow.errors.StoreError` once closed."""
        if self._closed:
            raise StoreError("the manager is closed")
        return await self._runner.run(fn, *args, **kwargs)
