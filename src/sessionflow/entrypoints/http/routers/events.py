"""The ``/events`` routes: the global event feed as pages (``GET /events?after=N&limit=``) and as a stream of
Server-Sent Events (``GET /events/stream``).

A user principal sees only the events of its own sessions; a service needs the ``events:read`` scope and sees
every event. Each SSE message carries the event's position as its ``id``, so a client that reconnects with
``Last-Event-ID`` resumes after the last event it received (the standard ``EventSource`` does this itself). When
the service stops, a stream ends after the message in hand, with a ``: stopping`` comment: the client reconnects
(to another instance) and resumes there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from sessionflow import SessionEvent
from sessionflow.application.feed import MAX_POSITION, read_events
from sessionflow.entrypoints.http.auth import EventsReader
from sessionflow.entrypoints.http.openapi import error_responses
from sessionflow.entrypoints.http.state import ManagerDep
from sessionflow.entrypoints.http.stopping import stopping_of

__all__ = ["EventPage", "router"]

#: The largest page of ``GET /events``.
MAX_EVENTS_PAGE = 1000
#: How often the stream reads the feed when it found nothing new.
POLL_INTERVAL = 0.25
#: A comment line is sent after this many seconds without events, so proxies keep the connection open.
KEEPALIVE = 15.0

After = Annotated[int, Query(ge=0, le=MAX_POSITION, description="Only events with a position above this one.")]
#: A feed position, bounded as ``after`` is: what a ``Last-Event-ID`` must be once its digits are read.
_POSITION: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_POSITION)])
_LAST_EVENT_ID = "Last-Event-ID"


class EventPage(BaseModel):
    """A page of the global feed: the events after ``after`` in position order, and the position to ask for
    next (the last event's, or ``after`` again when there was none)."""

    model_config = ConfigDict(frozen=True)

    items: list[SessionEvent]
    after: int
    next_after: int


#: One message of the stream, as the OpenAPI document describes it (the fields of a Server-Sent Event).
_SSE_MESSAGE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's position."},
        "event": {"type": "string", "description": "The event's name (created, started, ...)."},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "The event (a SessionEvent) as JSON."},
    },
    "required": ["id", "event", "data"],
}


def _sse(event: SessionEvent) -> str:
    data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.position}\nevent: {event.event}\ndata: {data}\n\n"


def _resume_position(last_event_id: str) -> int:
    """The position a ``Last-Event-ID`` header names (its digits already matched), refused exactly as an ``after``
    beyond :data:`~sessionflow.application.feed.MAX_POSITION` is: the same 400, naming the header."""
    try:
        return _POSITION.validate_python(int(last_event_id))
    except ValidationError as error:
        raise RequestValidationError([{**item, "loc": ("header", _LAST_EVENT_ID)} for item in error.errors()]) from None


def router(*, secured: bool) -> APIRouter:
    """The feed routes; ``secured``: the app has bearer tokens (the routes then document 401 and 403)."""
    routes = APIRouter()
    auth_codes = (401, 403) if secured else ()

    @routes.get("/events", response_model=EventPage, tags=["events"], operation_id="list_events",
                summary="The global event feed, in commit order",
                responses=error_responses(400, *auth_codes, 503))
    def list_events(who: EventsReader, manager: ManagerDep, after: After = 0,
                    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 100) -> Response:
        items = read_events(manager.store, after, limit, who.feed_user)
        return JSONResponse({"items": [e.model_dump(mode="json") for e in items], "after": after,
                             "next_after": items[-1].position if items else after})

    @routes.get("/events/stream", tags=["events"], operation_id="stream_events",
                summary="The global event feed as Server-Sent Events",
                response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {"schema": _SSE_MESSAGE}},
                                 "description": "One message per event: `id` its position, `event` its name, "
                                                "`data` the event as JSON."},
                           **error_responses(400, *auth_codes, 503)})
    async def stream_events(
        request: Request, who: EventsReader, manager: ManagerDep, after: After = 0,
        limit: Annotated[int | None, Query(ge=1, le=2**31, description=(
            "End the stream after this many events (default: never)."))] = None,
        follow: Annotated[bool, Query(description=(
            "Keep the stream open for new events (default); false: end it once the feed is exhausted."))] = True,
        last_event_id: Annotated[str | None, Header(alias=_LAST_EVENT_ID, pattern=r"^[0-9]{1,19}$", description=(
            "The position of the last event received: resume after it (takes precedence over `after`); at most "
            f"{MAX_POSITION}, as `after`."))] = None,
    ) -> Response:
        start = _resume_position(last_event_id) if last_event_id is not None else after
        user = who.feed_user
        store = manager.store
        stopping = stopping_of(request.app)

        async def messages() -> AsyncIterator[str]:
            position = start
            sent = 0
            idle = 0.0
            yield ": sessionflow event feed\n\n"
            while limit is None or sent < limit:
                if stopping.begun:
                    yield ": stopping\n\n"
                    return
                wanted = 100 if limit is None else min(100, limit - sent)
                page: list[Any] = await run_in_threadpool(read_events, store, position, wanted, user)
                for event in page:
                    yield _sse(event)
                    position = event.position or position
                sent += len(page)
                if page:
                    idle = 0.0
                    continue
                if not follow or await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_INTERVAL)
                idle += POLL_INTERVAL
                if idle >= KEEPALIVE:
                    idle = 0.0
                    yield ": keep-alive\n\n"

        return StreamingResponse(messages(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return routes
