"""Managers over the stores a factory opens: what the pytest plugin's ``sessionflow_manager_factory`` fixture
gives the contract suite (:mod:`sessionflow.testing.contract`).

Importing this module is cheap: managers are imported when the first one is built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from sessionflow.application.ports import EventStore
    from sessionflow.bootstrap import SessionManager

__all__ = ["ManagerFactory", "Managers", "StoreFactory"]

#: Opens a new, empty store of a backend (the contract suite calls it once for each manager it builds).
StoreFactory: TypeAlias = Callable[[], "EventStore"]
#: Builds a :class:`~sessionflow.SessionManager` from the manager's keyword arguments (``clock``,
#: ``default_ttl``, ``single_active_per_user``, ...).
ManagerFactory: TypeAlias = Callable[..., "SessionManager"]


class Managers:
    """A :data:`ManagerFactory`: each call builds a :class:`~sessionflow.SessionManager` over a store that
    ``open_store`` opens (the manager owns it); :meth:`close` closes every manager built."""

    def __init__(self, open_store: StoreFactory) -> None:
        self._open_store = open_store
        self._lock = threading.Lock()
        self._built: list[SessionManager] = []

    def __call__(self, **options: Any) -> SessionManager:
        """A new manager over a new store, built with ``options``."""
        from sessionflow.bootstrap import SessionManager

        store = self._open_store()
        try:
            manager = SessionManager(store, **options)
        except BaseException:
            store.close()
            raise
        with self._lock:
            self._built.append(manager)
        return manager

    def close(self) -> None:
        """Close every manager built so far (each closes its store), in the order they were built."""
        with self._lock:
            built, self._built = self._built, []
        for manager in built:
            manager.close()
