"""The console's pages, read-only: the sessions table and its counts, the sessions waiting on a deadline, one
session, its JSONL export, the feed and the lifecycles. Every page reads through the manager's public API with
the scopes the JSON API asks for; a user principal sees only its own sessions (another's is a 404)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sessionflow import InvalidInput, Session, SessionEvent, SessionNotFound
from sessionflow.diagram import DiagramUnavailable, lifecycle_graph, to_svg
from sessionflow.entrypoints.http.console import views
from sessionflow.entrypoints.http.console.access import SignedIn, user_of
from sessionflow.entrypoints.http.console.web import Console
from sessionflow.entrypoints.http.principals import Scope

__all__ = ["router", "visible"]

#: Rows of a page of the sessions table.
PAGE = 50
#: Events the feed page shows before its live tail.
FEED_PAGE = 50


def router(console: Console) -> APIRouter:
    """The read-only pages of ``console``."""
    routes = APIRouter()
    manager = console.manager

    @routes.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/sessions", status_code=303)

    @routes.get("/sessions", response_class=HTMLResponse)
    def sessions(request: Request) -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        statuses = sorted(manager.registry.all_states())
        filters = views.Filters.read(request.query_params, statuses)
        user = user_of(signed)
        page = manager.page(**filters.arguments(user), cursor=filters.cursor or None, limit=PAGE,
                            newest_first=filters.order == "newest")
        return console.page(request, "sessions.html", signed, nav="sessions", filters=filters, page=page,
                            statuses=statuses, lifecycles=manager.registry.names(), user=user,
                            now=manager.clock.now(), position=manager.last_position())

    @routes.get("/sessions/counts", response_class=HTMLResponse)
    def counts(request: Request, full: bool = False) -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        filters = views.Filters.read(request.query_params, sorted(manager.registry.all_states()))
        found = manager.count_by_status(**filters.arguments(user_of(signed)))
        return console.page(request, "counts.html", signed, nav="sessions", counts=found, filters=filters, full=full,
                            total=sum(found.values()))

    @routes.get("/deadlines", response_class=HTMLResponse)
    def deadlines(request: Request, within: str = "1h") -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        if within not in views.WINDOWS:
            raise InvalidInput("within", f"expected one of {', '.join(views.WINDOWS)}")
        found = manager.deadlines_within(views.WINDOWS[within][0], user_id=user_of(signed), limit=200)
        return console.page(request, "deadlines.html", signed, nav="deadlines", sessions=found, within=within,
                            windows=views.WINDOWS, now=manager.clock.now())

    @routes.get("/sessions/{session_id}", response_class=HTMLResponse)
    def session(request: Request, session_id: UUID) -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        found, history = visible(console, signed, session_id)
        drawn = manager.diagram(session_id)
        return console.page(request, "session.html", signed, nav="sessions", session=found,
                            steps=views.timeline(history), diagram=drawn, now=manager.clock.now(),
                            actions=views.actions_of(manager, found),
                            can_write=signed.allows(Scope.SESSIONS_WRITE),
                            can_delete=signed.allows(Scope.SESSIONS_ADMIN))

    @routes.get("/sessions/{session_id}/export.jsonl")
    def export(request: Request, session_id: UUID) -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        _, history = visible(console, signed, session_id)
        body = "".join(event.model_dump_json() + "\n" for event in history)
        return Response(body, media_type="application/x-ndjson", headers={
            "Content-Disposition": f'attachment; filename="session-{session_id}.jsonl"'})

    @routes.get("/feed", response_class=HTMLResponse)
    def feed(request: Request, event: Annotated[str, Query(max_length=64)] = "",
             user_id: Annotated[str, Query(max_length=256)] = "") -> Response:
        signed = console.who(request)
        signed.need(Scope.EVENTS_READ)
        user = user_of(signed) or user_id or None
        last = manager.last_position()
        start = max(0, last - 20 * FEED_PAGE)
        found = manager.events(after=start, limit=10_000, event=event or None, user_id=user)[-FEED_PAGE:]
        return console.page(request, "feed.html", signed, nav="feed", events=list(reversed(found)), event=event,
                            user_id=user_id, position=last)

    @routes.get("/lifecycles", response_class=HTMLResponse)
    def lifecycles(request: Request) -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        user = user_of(signed)
        drawn = []
        registry = manager.registry
        for name in registry.names():
            counts = manager.count_by_status(lifecycle=name, user_id=user)
            for version in registry.versions(name):
                definition = registry.get(name, version)
                graph = lifecycle_graph(definition.machine)
                try:
                    svg: str | None = to_svg(graph)
                except DiagramUnavailable:  # Graphviz missing or failing: the states are listed instead
                    svg = None
                drawn.append({"name": name, "version": version, "svg": svg, "states": definition.states,
                              "counts": counts})
        return console.page(request, "lifecycles.html", signed, nav="lifecycles", lifecycles=drawn)

    @routes.get("/lifecycles/counts")
    def lifecycle_counts(request: Request, name: str) -> Response:
        signed = console.who(request)
        signed.need(Scope.SESSIONS_READ)
        return JSONResponse(manager.count_by_status(lifecycle=name, user_id=user_of(signed)))

    return routes


def visible(console: Console, signed: SignedIn, session_id: UUID) -> tuple[Session, list[SessionEvent]]:
    """The session and its history when the principal may see them (else :class:`SessionNotFound`, as for a
    session that does not exist)."""
    manager = console.manager
    found = manager.get(session_id)
    user = user_of(signed)
    if user is not None and found.user_id != user:
        raise SessionNotFound(session_id)
    return found, manager.history(session_id)
