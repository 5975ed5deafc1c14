"""/metrics serves the app's registry, and its counters move with the requests."""

from __future__ import annotations

import re
from datetime import timedelta

from prometheus_client import CollectorRegistry

from sessionflow import SessionManager
from sessionflow.adapters.metrics import SessionflowMetrics
from sessionflow.testing import ManualClock
from tests.http.conftest import MakeClient

U = {"performer_id": "u1"}


def sample(text: str, name: str, **labels: str) -> float:
    rendered = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{rendered}}}" if labels else name) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_move_with_the_requests(make_client: MakeClient, clock: ManualClock) -> None:
    client = make_client()
    before = client.get("/metrics")
    assert before.headers["content-type"].startswith("text/plain")
    assert sample(before.text, "sessionflow_transitions_total", event="created", source="none",
                  target="pending") == 0

    sid = client.post("/sessions", json={**U, "ttl_seconds": 60}).json()["id"]
    client.post(f"/sessions/{sid}/start", json=U)
    assert client.post(f"/sessions/{sid}/touch", json=U, headers={"If-Match": "1"}).status_code == 412
    other = client.post("/sessions", json={**U, "ttl_seconds": 60}).json()["id"]
    clock.advance(timedelta(seconds=62))
    assert client.get(f"/sessions/{other}").json()["status"] == "expired"

    text = client.get("/metrics").text
    assert sample(text, "sessionflow_transitions_total", event="created", source="none", target="pending") == 2
    assert sample(text, "sessionflow_transitions_total", event="started", source="pending",
                  target="in_progress") == 1
    assert sample(text, "sessionflow_concurrency_conflicts_total", operation="touch") == 1
    assert sample(text, "sessionflow_expiry_lateness_seconds_count") == 1
    assert sample(text, "sessionflow_expiry_lateness_seconds_sum") == 2.0
    # The gauge counts stored states: the overdue session still counts as in progress until its expiry is
    # recorded (by the waker's sweep or a read).
    assert sample(text, "sessionflow_sessions", status="in_progress") == 1
    assert sample(text, "sessionflow_sessions", status="expired") == 1


def test_metrics_can_live_in_the_embedding_programs_registry_or_be_off(make_client: MakeClient) -> None:
    registry = CollectorRegistry()
    with SessionManager.in_memory() as manager:
        client = make_client(manager, registry=registry)
        client.post("/sessions", json=U)
        assert registry.get_sample_value("sessionflow_sessions", {"status": "pending"}) == 1
        assert "sessionflow_sessions" in client.get("/metrics").text
    with SessionManager.in_memory() as manager:
        mine = SessionflowMetrics(CollectorRegistry()).instrument(manager)
        client = make_client(manager, metrics=mine)
        client.post("/sessions", json=U)
        assert mine.registry.get_sample_value("sessionflow_sessions", {"status": "pending"}) == 1
    assert make_client(metrics=False).get("/metrics").status_code == 404
