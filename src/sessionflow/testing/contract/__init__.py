"""The store contract suite: what every sessionflow store must do, as pytest test classes — the tests
sessionflow's own stores pass, for a store of your own to prove itself with.

Collect the suite with one line in a test module of your project, and give it your store through the
``sessionflow_store_factory`` fixture (declared by sessionflow's pytest plugin; define yours in that module or
a ``conftest.py``): a callable that opens a new, empty store each time it is called::

    import pytest

    from sessionflow.testing.contract import *  # noqa: F403  (the contract suite, collected here)


    @pytest.fixture
    def sessionflow_store_factory(tmp_path):
        return lambda: MyStore(tmp_path / "store.db")

The suite builds each manager with ``sessionflow.SessionManager(store, ...)`` over a store of that factory
(the manager closes it). A backend that lacks an optional capability of :data:`CAPABILITIES` says so with the
``sessionflow_store_lacks`` fixture (a set of names): the tests that need it are skipped, with the reason;
every other test runs. See "Proving a backend with the contract suite" in ``docs/testing.md``.

Importing this package imports the test classes (and pytest); ``sessionflow`` and ``sessionflow.testing`` do
not import it.
"""

from __future__ import annotations

# Not in __all__ (the star import brings only the tests): the type of ``sessionflow_store_factory``, and the
# optional capabilities a backend may declare it lacks.
from sessionflow.testing._managers import StoreFactory as StoreFactory
from sessionflow.testing.contract._support import CAPABILITIES as CAPABILITIES
from sessionflow.testing.contract.batches import TestBatches
from sessionflow.testing.contract.closing import TestClosing
from sessionflow.testing.contract.concurrency import TestConcurrency
from sessionflow.testing.contract.create_started import TestCreateStarted
from sessionflow.testing.contract.expiry import TestExpiry
from sessionflow.testing.contract.feed import TestFeed
from sessionflow.testing.contract.idempotency import TestIdempotency, TestIdempotentBatches
from sessionflow.testing.contract.lifecycle import TestLifecycle
from sessionflow.testing.contract.listing import TestList
from sessionflow.testing.contract.nul import TestNulRefused
from sessionflow.testing.contract.ordering import TestCreationOrder
from sessionflow.testing.contract.overview import TestOverview
from sessionflow.testing.contract.policies import TestPoliciesAndErrors
from sessionflow.testing.contract.projection import TestProjection
from sessionflow.testing.contract.purge import TestPurge
from sessionflow.testing.contract.purge_hostile import TestPurgeHostile
from sessionflow.testing.contract.subscribers import TestSubscribers
from sessionflow.testing.contract.tracing import TestTraceContext
from sessionflow.testing.contract.updates import TestUpdateAndDelete

#: The test classes: what ``from sessionflow.testing.contract import *`` brings into a test module.
__all__ = [
    "TestBatches",
    "TestClosing",
    "TestConcurrency",
    "TestCreateStarted",
    "TestCreationOrder",
    "TestExpiry",
    "TestFeed",
    "TestIdempotency",
    "TestIdempotentBatches",
    "TestLifecycle",
    "TestList",
    "TestNulRefused",
    "TestOverview",
    "TestPoliciesAndErrors",
    "TestProjection",
    "TestPurge",
    "TestPurgeHostile",
    "TestSubscribers",
    "TestTraceContext",
    "TestUpdateAndDelete",
]
