"""What every contract test class shares: its fixtures, and the optional capabilities a backend may declare it
lacks.

:class:`ContractSuite` is the base of the test classes. It gives their tests three fixtures: ``clock`` (a
:class:`~sessionflow.testing.ManualClock` at 2030-01-01 12:00 UTC), ``make_manager`` (the plugin's
``sessionflow_manager_factory``: ``make_manager(**options)`` builds a ``SessionManager`` over a new store of
the backend under test) and a check that skips a test marked with :func:`requires` when the backend declares,
through the plugin's ``sessionflow_store_lacks`` fixture, that it lacks the capability.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from sessionflow import SessionEvent
from sessionflow.testing import ManualClock
from sessionflow.testing._managers import ManagerFactory

__all__ = ["CAPABILITIES", "REQUIRES_MARK", "ContractSuite", "MakeManager", "positions_of", "requires"]

#: ``make_manager(**options)``: a ``SessionManager`` over a new store, built with the manager's arguments.
MakeManager = ManagerFactory

#: The optional capabilities some contract tests need, and what each is. A backend that lacks one names it in
#: the ``sessionflow_store_lacks`` fixture; the tests that need it are then skipped, saying so.
CAPABILITIES: Mapping[str, str] = MappingProxyType({
    "purge": "removing closed sessions (SessionManager.purge: the store's purge_sessions)",
    "idempotency": "keeping idempotency keys (writes with idempotency_key=: the store's find_key, "
                   "drop_expired_keys and Change.idempotency)",
})

#: The marker :func:`requires` puts on a test (registered by the pytest plugin).
REQUIRES_MARK = "sessionflow_requires"

#: Where the contract suite's clock starts.
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def requires(capability: str) -> pytest.MarkDecorator:
    """Mark a contract test as needing ``capability`` (a key of :data:`CAPABILITIES`)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}: one of {sorted(CAPABILITIES)}")
    mark: pytest.MarkDecorator = getattr(pytest.mark, REQUIRES_MARK)(capability)
    return mark


def positions_of(events: Iterable[SessionEvent]) -> list[int]:
    """The feed positions of stored events, in their order (a stored event always has one)."""
    positions = [event.position for event in events]
    assert None not in positions, f"a stored event without a feed position: {positions}"
    return [position for position in positions if position is not None]


def lacking(declared: object) -> frozenset[str]:
    """The capabilities ``declared`` (what ``sessionflow_store_lacks`` gave) names, each checked: a name the
    suite does not know is a usage error, not a silent no-op."""
    if isinstance(declared, str) or not isinstance(declared, (set, frozenset, list, tuple)):
        raise TypeError(f"sessionflow_store_lacks must give a set of capability names, not {declared!r}")
    names = frozenset(declared)
    unknown = sorted(str(name) for name in names if name not in CAPABILITIES)
    if unknown:
        raise ValueError(f"sessionflow_store_lacks names unknown capabilities {unknown}: "
                         f"the contract suite knows {sorted(CAPABILITIES)}")
    return names


class ContractSuite:
    """Base of the contract test classes: the fixtures their tests take (see the module's docstring)."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        """A manual clock at 2030-01-01 12:00 UTC."""
        return ManualClock(START)

    @pytest.fixture
    def make_manager(self, sessionflow_manager_factory: MakeManager) -> MakeManager:
        """``make_manager(**options)``: a manager over a new store of the backend under test."""
        return sessionflow_manager_factory

    @pytest.fixture(autouse=True)
    def _declared_capabilities(self, request: pytest.FixtureRequest, sessionflow_store_lacks: object) -> None:
        """Skip a test that needs a capability the backend declares it lacks, naming it."""
        try:
            lacks = lacking(sessionflow_store_lacks)
        except (TypeError, ValueError) as error:
            pytest.fail(str(error), pytrace=False)
        for mark in request.node.iter_markers(REQUIRES_MARK):
            capability = str(mark.args[0])
            if capability in lacks:
                pytest.skip(f"the backend declares it lacks {capability!r} (sessionflow_store_lacks): "
                            f"{CAPABILITIES[capability]}")
