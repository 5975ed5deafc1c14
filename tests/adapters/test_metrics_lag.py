"""``sessionflow_consumer_lag_events``: the feed's head position minus each consumer's stored position, read at
scrape time, for every consumer whose position the store keeps (one consuming in another process included), the
consumers named to the metrics and those consuming through the instrumented manager."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sessionflow import InvalidInput, SessionManager, StoreError
from sessionflow.adapters.metrics import SessionflowMetrics

LAG = "sessionflow_consumer_lag_events"


@pytest.fixture(params=["memory", "sqlite"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionManager]:
    mgr = (SessionManager.in_memory() if request.param == "memory"
           else SessionManager.open(f"sqlite:///{tmp_path / 'lag.db'}"))
    with mgr:
        yield mgr


def _lag(registry: CollectorRegistry, consumer: str) -> float | None:
    return registry.get_sample_value(LAG, {"consumer": consumer})


def test_the_lag_of_a_named_consumer_follows_the_feed_and_its_position(manager: SessionManager) -> None:
    registry = CollectorRegistry()
    metrics = SessionflowMetrics(registry, consumers=["billing"]).instrument(manager)
    assert _lag(registry, "billing") == 0
    for user in ("u1", "u2", "u3"):
        manager.create(user_id=user, performer_id=user)
    assert _lag(registry, "billing") == 3
    manager.save_consumer_position("billing", manager.events()[0].position or 0)
    assert _lag(registry, "billing") == 2
    handled = manager.consume("audit", lambda event: None, follow=False)  # consuming here: watched by itself
    assert handled == 3
    assert _lag(registry, "audit") == 0
    manager.create(user_id="u4", performer_id="u4")
    assert (_lag(registry, "billing"), _lag(registry, "audit")) == (3, 1)
    assert b'sessionflow_consumer_lag_events{consumer="billing"} 3.0' in generate_latest(registry)
    metrics.watch_consumer("reports")  # never consumed: the whole feed is ahead of it
    assert _lag(registry, "reports") == 4
    metrics.detach()
    assert _lag(registry, "billing") is None  # no manager to read from


def test_a_consumer_of_another_process_is_reported_without_being_named(tmp_path: Path) -> None:
    """The serving process's metrics show the lag of a consumer that runs elsewhere on the same database, from
    the position the store keeps for it."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    registry = CollectorRegistry()
    with SessionManager.open(url) as served, SessionManager.open(url) as elsewhere:
        metrics = SessionflowMetrics(registry).instrument(served)
        assert LAG.encode() + b"{" not in generate_latest(registry)  # no consumer yet: no sample
        for user in ("u1", "u2", "u3"):
            served.create(user_id=user, performer_id=user)
        assert elsewhere.consume("mailer", lambda event: None, follow=False, max_events=2) == 2
        assert _lag(registry, "mailer") == 1
        elsewhere.consume("mailer", lambda event: None, follow=False)
        assert _lag(registry, "mailer") == 0
        metrics.detach()


def test_a_consumer_name_the_feed_refuses_is_refused() -> None:
    with pytest.raises(InvalidInput):
        SessionflowMetrics(CollectorRegistry(), consumers=[""])
    manager = SessionManager.in_memory()
    registry = CollectorRegistry()
    SessionflowMetrics(registry).instrument(manager)
    with pytest.raises(InvalidInput):
        manager.consume("bad\nname", lambda event: None, follow=False)
    assert LAG.encode() + b"{" not in generate_latest(registry)


def test_a_store_that_does_not_answer_leaves_the_gauge_out_of_the_scrape(manager: SessionManager,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    SessionflowMetrics(registry, consumers=["billing"]).instrument(manager)

    def down() -> int:
        raise StoreError("the database is down")

    monkeypatch.setattr(manager, "last_position", down)
    assert _lag(registry, "billing") is None
    assert (registry.get_sample_value("sessionflow_store_errors_total", {"operation": "scrape"}) or 0) >= 1
