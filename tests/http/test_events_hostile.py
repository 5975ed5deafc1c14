"""Feed positions beyond a signed 64-bit integer: ``Last-Event-ID`` is bounded exactly as ``?after=`` is (a 400
naming it, before the stream starts), and the library's feed reads refuse such a position with ``InvalidInput``
instead of letting the store's driver overflow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import InvalidInput, SessionManager
from sessionflow.application.feed import MAX_POSITION, read_events
from sessionflow.entrypoints.http import create_app

TOO_BIG = [str(MAX_POSITION + 1), "9999999999999999999"]


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SessionManager]:
    with SessionManager.open(f"sqlite:///{tmp_path / 'feed.db'}") as mgr:
        for user in ("u1", "u2"):
            mgr.create(performer_id=user, user_id=user)
        yield mgr


@pytest.fixture
def client(manager: SessionManager) -> Iterator[TestClient]:
    with TestClient(create_app(manager, metrics=False), raise_server_exceptions=True) as c:
        yield c


def _without_field(body: dict[str, Any]) -> dict[str, Any]:
    """An error body with the name of the offending parameter taken out."""
    rest = {k: v for k, v in body.items() if k not in ("field", "message", "errors")}
    rest["errors"] = [{k: v for k, v in e.items() if k != "field"} for e in body["errors"]]
    return rest


@pytest.mark.parametrize("position", TOO_BIG)
def test_a_last_event_id_beyond_the_largest_position_is_a_400_like_after(client: TestClient, position: str) -> None:
    streamed = client.get("/events/stream", params={"follow": "false"}, headers={"Last-Event-ID": position})
    assert streamed.status_code == 400, streamed.text
    assert streamed.headers["content-type"] == "application/json"
    body = streamed.json()
    assert (body["error"], body["code"], body["field"]) == ("InvalidInput", "invalid_input", "Last-Event-ID")
    assert body["errors"] == [{"field": "Last-Event-ID", "problem": body["problem"]}]
    assert str(MAX_POSITION) in body["problem"]
    # The same refusal, word for word but the parameter's name, as the query parameter's.
    queried = client.get("/events/stream", params={"follow": "false", "after": position})
    assert queried.status_code == 400
    assert queried.json()["field"] == "after"
    assert _without_field(body) == _without_field(queried.json())
    paged = client.get("/events", params={"after": position})
    assert paged.status_code == 400
    assert _without_field(paged.json()) == _without_field(body)


def test_the_largest_position_itself_is_accepted(client: TestClient) -> None:
    streamed = client.get("/events/stream", params={"follow": "false"},
                          headers={"Last-Event-ID": str(MAX_POSITION)})
    assert streamed.status_code == 200
    assert streamed.text == ": sessionflow event feed\n\n"
    resumed = client.get("/events/stream", params={"follow": "false"}, headers={"Last-Event-ID": "1"})
    assert resumed.status_code == 200
    assert resumed.text.count("\nevent: created\n") == 1


@pytest.mark.parametrize("after", [MAX_POSITION + 1, 10**19, 2**64, -1, True, "5", 1.0, None])
def test_library_feed_reads_refuse_a_position_out_of_range(manager: SessionManager, after: Any) -> None:
    before = manager.last_position()
    reads: list[Callable[[], object]] = [lambda: manager.events(after=after),
                                         lambda: read_events(manager.store, after, 10),
                                         lambda: read_events(manager.store, after, 10, user_id="u1")]
    for read in reads:
        with pytest.raises(InvalidInput) as caught:
            read()
        assert caught.value.field == "after"
    assert manager.last_position() == before


@pytest.mark.parametrize(("limit", "user_id", "field"), [
    (0, None, "limit"), (10_001, None, "limit"), (True, None, "limit"), (10, "a\x00b", "user_id"),
    (10, "", "user_id"),
])
def test_the_checked_feed_read_names_its_other_bad_arguments(manager: SessionManager, limit: Any, user_id: Any,
                                                            field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_events(manager.store, 0, limit, user_id=user_id)
    assert caught.value.field == field


def test_the_checked_feed_read_reads_the_feed(manager: SessionManager) -> None:
    assert [e.position for e in read_events(manager.store, 0, 10)] == [1, 2]
    assert [e.performer_id for e in read_events(manager.store, 0, 10, user_id="u2")] == ["u2"]
    assert read_events(manager.store, MAX_POSITION, 10) == []
