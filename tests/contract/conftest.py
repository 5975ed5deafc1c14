"""The contract suite shipped in the package (``sessionflow.testing.contract``) on every backend of this
repository: the fixtures the suite takes its stores and managers from, parametrized over the backends of
``tests/support/backends.py`` through the ``backend`` fixture (``tests/conftest.py``).

``sessionflow_store_factory`` opens a store of the current backend (on an asyncio variant, the store under the
facade); ``sessionflow_manager_factory`` is the plugin's on the four stores and, on the asyncio variants,
builds ``AsyncSessionManager`` objects behind a synchronous bridge.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionflow.testing.contract import StoreFactory
from tests.conftest import MakeManager
from tests.support.async_bridge import async_managers
from tests.support.backends import ASYNC_BACKENDS, open_store


@pytest.fixture
def sessionflow_store_factory(backend: str, database_url: str | None) -> StoreFactory:
    """Opens a new store of the current backend; every store of one test shares its database."""
    store_backend = backend.removesuffix("-async")
    return lambda: open_store(store_backend, database_url)


@pytest.fixture
def sessionflow_manager_factory(backend: str, database_url: str | None,
                                sessionflow_manager_factory: MakeManager) -> Iterator[MakeManager]:
    """The plugin's managers over :func:`sessionflow_store_factory`; on an asyncio backend, asynchronous
    managers driven through a synchronous bridge."""
    if backend in ASYNC_BACKENDS:
        yield from async_managers(database_url)
    else:
        yield sessionflow_manager_factory

