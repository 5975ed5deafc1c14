"""SessionflowMetrics: the counters, gauge and histograms move with the manager's work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from sessionflow import ConcurrencyConflict, SessionManager, StoreError
from sessionflow.adapters.metrics import INSTRUMENTED_METHODS, SessionflowMetrics
from sessionflow.bootstrap import build
from sessionflow.testing import ManualClock


@pytest.fixture(params=["memory", "sqlite"])
def manager(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[SessionManager]:
    if request.param == "memory":
        mgr = SessionManager.in_memory(clock=clock)
    else:
        mgr = build(f"sqlite:///{tmp_path / 'metrics.db'}", clock=clock)
    with mgr:
        yield mgr


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_transitions_and_sessions_by_status(manager: SessionManager, registry: CollectorRegistry) -> None:
    SessionflowMetrics(registry).instrument(manager)
    assert value(registry, "sessionflow_sessions", status="pending") == 0
    a = manager.create(performer_id="u", file_paths=["f"])
    b = manager.create(performer_id="u")
    manager.start(a.id, performer_id="u")
    manager.record_file(a.id, "f", performer_id="u")
    manager.complete(a.id, performer_id="u")
    manager.fail(b.id, reason="no", performer_id="u")
    manager.create(performer_id="u")

    assert value(registry, "sessionflow_transitions_total", event="created", source="none", target="pending") == 3
    assert value(registry, "sessionflow_transitions_total", event="started", source="pending",
                 target="in_progress") == 1
    assert value(registry, "sessionflow_transitions_total", event="file_recorded", source="in_progress",
                 target="in_progress") == 1
    assert value(registry, "sessionflow_transitions_total", event="completed", source="in_progress",
                 target="completed") == 1
    assert value(registry, "sessionflow_transitions_total", event="failed", source="pending", target="failed") == 1
    counts = {s: value(registry, "sessionflow_sessions", status=s)
              for s in ("pending", "in_progress", "completed", "failed", "expired")}
    assert counts == {"pending": 1, "in_progress": 0, "completed": 1, "failed": 1, "expired": 0}


def test_expiry_lateness_and_sweeps(manager: SessionManager, registry: CollectorRegistry,
                                    clock: ManualClock) -> None:
    SessionflowMetrics(registry).instrument(manager)
    for _ in range(3):
        manager.create(performer_id="u", ttl=timedelta(seconds=60))
    clock.advance(timedelta(seconds=65))
    assert manager.expire_sessions() == 3
    assert manager.expire_sessions() == 0

    assert value(registry, "sessionflow_sweep_sessions_count") == 2
    assert value(registry, "sessionflow_sweep_sessions_sum") == 3
    assert value(registry, "sessionflow_sweep_duration_seconds_count") == 2
    assert value(registry, "sessionflow_expiry_lateness_seconds_count") == 3
    assert value(registry, "sessionflow_expiry_lateness_seconds_sum") == pytest.approx(15.0)
    assert value(registry, "sessionflow_expiry_lateness_seconds_bucket", le="2.5") == 0
    assert value(registry, "sessionflow_expiry_lateness_seconds_bucket", le="5.0") == 3
    assert value(registry, "sessionflow_transitions_total", event="expired", source="pending", target="expired") == 3
    assert value(registry, "sessionflow_sessions", status="expired") == 3

    lazy = manager.create(performer_id="u", ttl=timedelta(seconds=10))
    clock.advance(timedelta(seconds=10, milliseconds=250))
    assert manager.get(lazy.id).status == "expired"  # lazy expiry counts too
    assert value(registry, "sessionflow_expiry_lateness_seconds_count") == 4
    assert value(registry, "sessionflow_expiry_lateness_seconds_bucket", le="0.25") == 1


def test_conflicts_and_store_errors_are_counted(manager: SessionManager, registry: CollectorRegistry) -> None:
    metrics = SessionflowMetrics(registry).instrument(manager)
    session = manager.create(performer_id="u")
    manager.touch(session.id, performer_id="u")
    with pytest.raises(ConcurrencyConflict):
        manager.touch(session.id, performer_id="u", expected_version=1)
    with pytest.raises(ConcurrencyConflict):
        manager.update(session.id, performer_id="u", metadata={}, expected_version=1)
    assert value(registry, "sessionflow_concurrency_conflicts_total", operation="touch") == 1
    assert value(registry, "sessionflow_concurrency_conflicts_total", operation="update") == 1
    assert value(registry, "sessionflow_errors_total", operation="touch", error="ConcurrencyConflict") == 1

    manager.store.close()
    with pytest.raises(StoreError):
        manager.get(session.id)
    assert value(registry, "sessionflow_store_errors_total", operation="get") == 1
    generate_latest(registry)  # a scrape with the store down does not fail, it counts
    # one per gauge that could not be read: the sessions by status and the consumers' lag
    assert value(registry, "sessionflow_store_errors_total", operation="scrape") == 2
    assert value(registry, "sessionflow_sessions", status="pending") == 0
    assert {name for name, _, _ in metrics.samples()} >= {"sessionflow_transitions_total", "sessionflow_errors_total"}


def test_detach_restores_the_manager_and_stops_counting(registry: CollectorRegistry) -> None:
    with SessionManager.in_memory() as manager:
        metrics = SessionflowMetrics(registry).instrument(manager)
        assert metrics.instrument(manager) is metrics  # idempotent
        assert set(INSTRUMENTED_METHODS) <= set(vars(manager))
        manager.create(performer_id="u")
        metrics.detach()
        assert not set(INSTRUMENTED_METHODS) & set(vars(manager))
        manager.create(performer_id="u")
        assert value(registry, "sessionflow_transitions_total", event="created", source="none",
                     target="pending") == 1
        with SessionManager.in_memory() as other:
            metrics.instrument(other)
            with pytest.raises(ValueError, match="another manager"):
                metrics.instrument(manager)
            metrics.detach()
        metrics.unregister()
        assert registry.get_sample_value("sessionflow_transitions_total", {}) is None
        SessionflowMetrics(registry)  # the names are free again


def test_the_default_registry_and_an_embedding_programs_own_metrics() -> None:
    metrics = SessionflowMetrics()
    try:
        assert metrics.registry is REGISTRY
        with SessionManager.in_memory() as manager:
            metrics.instrument(manager)
            manager.create(performer_id="u")
            assert REGISTRY.get_sample_value("sessionflow_sessions", {"status": "pending"}) == 1
            metrics.detach()
    finally:
        metrics.unregister()
    own = CollectorRegistry()
    from prometheus_client import Counter

    jobs = Counter("jobs", "The embedding program's own metric.", registry=own)
    jobs.inc()
    with SessionManager.in_memory() as manager:
        SessionflowMetrics(own, namespace="app_sessions").instrument(manager)
        manager.create(performer_id="u")
    text = generate_latest(own).decode()
    assert "jobs_total 1.0" in text
    assert 'app_sessions_transitions_total{event="created",source="none",target="pending"} 1.0' in text
