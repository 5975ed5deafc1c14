"""The request body limit: an ASGI middleware that refuses a body over the limit with 413, unread.

A request whose ``Content-Length`` is over the limit is answered at once, before the app runs or a byte of
the body is read. A body without a length (``Transfer-Encoding: chunked``), or one longer than its header
said, is counted as it streams in: the chunk that passes the limit stops the reading, and the request is
answered 413 — the rest of the body is never read, and the app never sees a partial body. The 413 carries
``Connection: close``, since the unread body is still on the connection.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionflow.settings import DEFAULT_MAX_BODY_BYTES

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyLimit", "BodyTooLarge", "too_large_body"]


class BodyTooLarge(HTTPException):
    """A request body over the limit (a 413). An ``HTTPException``, so FastAPI's body reading lets it
    through unchanged; :class:`BodyLimit` answers it if nothing else did."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes",
                         headers={"Connection": "close"})
        self.limit = limit


def too_large_body(limit: int) -> dict[str, object]:
    """The error body of a 413."""
    return {"error": "PayloadTooLarge", "code": "payload_too_large",
            "message": f"the request body is larger than the limit of {limit} bytes", "limit": limit}


class BodyLimit:
    """ASGI middleware: refuse an HTTP request body longer than ``max_bytes`` with 413 before reading it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError("max_bytes must be a non-negative integer")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:  # pragma: no cover - a route streaming its answer while reading its body
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length; counting still applies
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(too_large_body(limit), separators=(",", ":")).encode("ascii")
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
