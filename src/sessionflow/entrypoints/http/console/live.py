"""The console's live parts, as Server-Sent Events the browser's own ``EventSource`` reads: the feed's tail (rows of
the feed page, resuming after ``Last-Event-ID``), the sessions table's new and changed rows, and the counts of a
lifecycle's states. Each follows the event feed through the manager (``events``), in the principal's view: a
user principal's streams carry only its own sessions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sessionflow import Session, SessionEvent, SessionNotFound
from sessionflow.entrypoints.http.console import views
from sessionflow.entrypoints.http.console.access import user_of
from sessionflow.entrypoints.http.console.web import Console
from sessionflow.entrypoints.http.principals import Scope

__all__ = ["router"]

#: Seconds between two reads of the feed when it had nothing new.
POLL = 0.5
#: A comment is sent after this many seconds without a message, so proxies keep the stream open.
KEEPALIVE = 15.0


def _message(kind: str, data: dict[str, Any], ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream(messages: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(messages, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _follow(request: Request, console: Console, after: int, event: str | None, user: str | None,
                  handle: Callable[[list[SessionEvent]], list[str]]) -> AsyncIterator[str]:
    """Read the feed after ``after`` until the client goes, handing each page to ``handle``."""
    manager = console.manager
    position = after
    idle = 0.0
    yield ": sessionflow console\n\n"
    while not await request.is_disconnected():
        page: list[SessionEvent] = await run_in_threadpool(
            manager.events, after=position, limit=200, event=event, user_id=user)
        if page:
            position = page[-1].position or position
            for text in await run_in_threadpool(handle, page):
                yield text
            idle = 0.0
            continue
        await asyncio.sleep(POLL)
        idle += POLL
        if idle >= KEEPALIVE:
            idle = 0.0
            yield ": keep-alive\n\n"


def router(console: Console) -> APIRouter:
    """The live streams of ``console``."""
    routes = APIRouter()
    manager = console.manager
    env = console.templates.env

    @routes.get("/live/feed")
    async def feed(request: Request, event: Annotated[str, Query(max_length=64)] = "",
                   user_id: Annotated[str, Query(max_length=256)] = "", after: Annotated[int, Query(ge=0)] = 0,
                   last_event_id: Annotated[str | None, Header(alias="Last-Event-ID",
                                                               pattern=r"^[0-9]{1,18}$")] = None) -> StreamingResponse:
        signed = console.who(request)
        signed.need(Scope.EVENTS_READ)
        user = user_of(signed) or user_id or None
        start = int(last_event_id) if last_event_id is not None else after
        template = env.get_template("_event_row.html")

        def rows(page: list[SessionEvent]) -> list[str]:
            return [_message("row", {"html": template.render(e=e, root=request.scope.get("root_path", ""))},
                             e.position) for e in page]

        return _stream(_follow(request, console, start, event or None, user, rows))

    @routes.get("/live/sessions")
    async def sessions(request: Request, after: Annotated[int, Query(ge=0)] = 0) -> StreamingResponse:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        filters = views.Filters.read(request.query_params, sorted(manager.registry.all_states()))
        user = user_of(signed)
        wanted = filters.arguments(user)
        template = env.get_template("_session_row.html")
        root = request.scope.get("root_path", "")

        def rows(page: list[SessionEvent]) -> list[str]:
            out = []
            for sid in dict.fromkeys(e.session_id for e in page):
                created = any(e.session_id == sid and e.version == 1 for e in page)
                try:
                    session = manager.get(sid)
                except SessionNotFound:
                    out.append(_message("drop", {"id": str(sid)}))
                    continue
                if not _matches(session, wanted):
                    out.append(_message("drop", {"id": str(sid)}))
                    continue
                html = template.render(s=session, root=root, now=manager.clock.now())
                out.append(_message("session", {"id": str(sid), "created": created, "html": html}))
            out.append(_message("changed", {"position": page[-1].position}))
            return out

        return _stream(_follow(request, console, after, None, user, rows))

    @routes.get("/live/counts")
    async def counts(request: Request, lifecycle: Annotated[str, Query(max_length=128)],
                     after: Annotated[int, Query(ge=0)] = 0) -> StreamingResponse:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        user = user_of(signed)

        def count(page: list[SessionEvent]) -> list[str]:
            found = manager.count_by_status(lifecycle=lifecycle, user_id=user)
            return [_message("counts", {"lifecycle": lifecycle, "counts": found}, page[-1].position)]

        return _stream(_follow(request, console, after, None, user, count))

    return routes


def _matches(session: Session, wanted: dict[str, Any]) -> bool:
    """Whether ``session`` passes the sessions table's filters (``wanted``: the arguments of ``page``)."""
    statuses = wanted["status"]
    if statuses is not None and str(session.status) not in statuses:
        return False
    for name in ("user_id", "workspace_id", "module_name", "lifecycle"):
        if wanted[name] is not None and getattr(session, name) != wanted[name]:
            return False
    low: datetime | None = wanted["created_after"]
    high: datetime | None = wanted["created_before"]
    return (low is None or session.created_at >= low) and (high is None or session.created_at < high)

