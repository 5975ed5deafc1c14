"""The request body limit: 413 before the body is read whole, by its Content-Length or as a chunked body
streams in; nothing is written; the limit is configurable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import app_from_env, create_app
from sessionflow.entrypoints.http.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from sessionflow.settings import Settings
from tests.http.conftest import MakeClient

LIMIT = 4096
U = {"performer_id": "u1"}


def _call(app: FastAPI, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes],
          path: str = "/sessions") -> tuple[int, dict[str, str], bytes, int]:
    """Drive ``app`` as a server would: status, headers, body, and how many chunks the app asked for."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), *headers], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, asked


def _endless(size: int = 1000) -> Iterator[bytes]:
    while True:
        yield b" " * size


@pytest.fixture
def app(manager: SessionManager) -> FastAPI:
    return create_app(manager, max_body_bytes=LIMIT, metrics=False)


def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte(app: FastAPI,
                                                                           manager: SessionManager) -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    status, headers, body, asked = _call(app, [(b"content-length", str(LIMIT + 1).encode())], never())
    assert (status, asked) == (413, 0)
    assert headers["connection"] == "close"
    assert json.loads(body) == {"error": "PayloadTooLarge", "code": "payload_too_large",
                                "message": f"the request body is larger than the limit of {LIMIT} bytes",
                                "limit": LIMIT}
    assert manager.count() == 0


def test_a_chunked_body_is_counted_as_it_streams_and_reading_stops_at_the_limit(app: FastAPI,
                                                                               manager: SessionManager) -> None:
    status, headers, body, asked = _call(app, [], _endless(1000))  # no Content-Length, and it never ends
    assert status == 413
    assert json.loads(body)["code"] == "payload_too_large"
    assert headers["connection"] == "close"
    assert asked == LIMIT // 1000 + 1  # the chunk that passed the limit was the last one read
    assert manager.count() == 0


def test_a_body_within_the_limit_goes_through(app: FastAPI, manager: SessionManager) -> None:
    document = json.dumps(U).encode()
    padded = document + b" " * (LIMIT - len(document))
    pieces = iter([padded[:1000], padded[1000:]])
    status, _, _, _ = _call(app, [], pieces)
    assert status == 201
    status, _, _, _ = _call(app, [(b"content-length", str(LIMIT + 1).encode())], iter([padded + b" "]))
    assert status == 413
    assert manager.count() == 1


def test_through_a_client_both_ways(make_client: MakeClient, manager: SessionManager) -> None:
    client = make_client(manager, max_body_bytes=LIMIT)
    declared = client.post("/sessions", content=b" " * (LIMIT + 1), headers={"content-type": "application/json"})
    assert (declared.status_code, declared.json()["code"]) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:
        yield from (b" " * 1000 for _ in range(10))

    streamed = client.post("/sessions", content=chunks(), headers={"content-type": "application/json"})
    assert (streamed.status_code, streamed.json()["code"]) == (413, "payload_too_large")
    elsewhere = client.post("/no/such/route", content=b"x" * (LIMIT + 1))
    assert elsewhere.status_code == 413  # refused before routing: no body over the limit is read anywhere
    assert manager.count() == 0
    assert client.post("/sessions", json=U).status_code == 201


def test_the_default_limit_and_its_setting(tmp_path: Path) -> None:
    assert DEFAULT_MAX_BODY_BYTES == Settings().http.max_body_bytes == 4 * 1024 * 1024
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'limit.db'}", http={"max_body_bytes": 2048})
    app = app_from_env(settings, environ={}, timeouts=False)
    try:
        with TestClient(app) as client:
            big = client.post("/sessions", json={**U, "metadata": {"k": "v" * 3000}})
            assert big.status_code == 413
            assert big.json()["limit"] == 2048
            assert client.post("/sessions", json=U).status_code == 201
    finally:
        if app.state.metrics is not None:
            app.state.metrics.detach()
            app.state.metrics.unregister()


def test_the_middleware_refuses_a_nonsense_limit() -> None:
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="max_bytes"):
            BodyLimit(FastAPI(), max_bytes=bad)  # type: ignore[arg-type]
