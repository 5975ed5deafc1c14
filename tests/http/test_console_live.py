"""The console's live streams from a real uvicorn server on a loopback port: the feed's tail resumes after
``Last-Event-ID``, filtered by event name; the sessions stream sends the rows of new and changed sessions that
match the table's filters (and drops the others); the counts stream follows a lifecycle's states."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from sessionflow.entrypoints.http.console import mount_console


@pytest.fixture
def served() -> Iterator[tuple[str, SessionManager]]:
    manager = SessionManager.in_memory()
    app = create_app(manager, metrics=False)
    mount_console(app)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", manager
    finally:
        server.should_exit = True
        thread.join(20)
        manager.close()


def messages(url: str, count: int, headers: dict[str, str] | None = None, during: Any = None,
             until: Any = None) -> list[tuple[str, str, dict[str, Any]]]:
    """The first ``count`` messages of the stream at ``url`` as ``(id, event, data)`` (or, with ``until``, those
    up to the first message it is true of); ``during()`` runs once the stream is open."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    with httpx.Client(timeout=20) as client, client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if during is not None:
            during()
        current: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(("id: ", "event: ", "data: ")):
                key, _, value = line.partition(": ")
                current[key] = value
            elif not line and "data" in current:
                found.append((current.get("id", ""), current.get("event", ""), json.loads(current["data"])))
                current = {}
                if len(found) == count or (until is not None and until(found[-1])):
                    break
    return found


def test_the_feed_resumes_after_the_last_event_id(served: tuple[str, SessionManager]) -> None:
    url, manager = served
    made = [manager.create(performer_id="p", user_id="u") for _ in range(3)]
    manager.fail(made[0].id, reason="r", performer_id="p")
    second = manager.events()[1].position
    tail = messages(f"{url}/ui/live/feed", 2, headers={"Last-Event-ID": str(second)})
    assert [ident for ident, _, _ in tail] == ["3", "4"]
    assert [kind for _, kind, _ in tail] == ["row", "row"]
    assert str(made[2].id)[:8] in tail[0][2]["html"]
    failed = messages(f"{url}/ui/live/feed?event=failed", 1)
    assert "<strong>failed</strong>" in failed[0][2]["html"]


def test_the_sessions_stream_sends_matching_rows_and_drops_the_others(served: tuple[str, SessionManager]) -> None:
    url, manager = served
    kept = manager.create(performer_id="p", user_id="u")
    position = manager.last_position()

    def write() -> None:
        manager.create(performer_id="p", user_id="u")
        manager.fail(kept.id, reason="r", performer_id="p")

    found = messages(f"{url}/ui/live/sessions?status=pending&after={position}", 10, during=write,
                     until=lambda message: message[1] == "drop")
    kinds = [(kind, data.get("created")) for _, kind, data in found]
    assert kinds[0] == ("session", True)
    assert kinds[-1] == ("drop", None)  # the failed session no longer matches status=pending
    assert found[-1][2]["id"] == str(kept.id)


def test_the_counts_stream_follows_a_lifecycle(served: tuple[str, SessionManager]) -> None:
    url, manager = served
    manager.create(performer_id="p")
    position = manager.last_position()  # (from 0, the first create alone could make the first message)
    found = messages(f"{url}/ui/live/counts?lifecycle=session&after={position}", 1,
                     during=lambda: manager.create(performer_id="p"))
    assert found[0][1] == "counts"
    assert found[0][2]["counts"] == {"pending": 2}
