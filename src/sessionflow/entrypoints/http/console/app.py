"""The console as an ASGI application of its own (a FastAPI app, mounted under the service at ``/ui``): the static
files, the routers of the pages, the actions and the live streams, and what a refusal or an error shows."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from sessionflow import SessionflowError, SessionManager
from sessionflow.entrypoints.http.console import actions, live, pages
from sessionflow.entrypoints.http.console.access import ConsoleAccess, Denied, SignedIn
from sessionflow.entrypoints.http.console.web import HERE, Console, templates
from sessionflow.entrypoints.http.errors import status_for

__all__ = ["console_app"]


def console_app(manager: SessionManager, access: ConsoleAccess, *, performer: str = "console") -> FastAPI:
    """The console over ``manager``: its pages, live streams and actions, as an app to mount."""
    console = Console(manager, access, templates(), performer)
    app = FastAPI(title="sessionflow console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (pages.router(console), actions.router(console), live.router(console)):
        app.include_router(router)

    @app.exception_handler(Denied)
    async def denied(request: Request, error: Denied) -> Response:
        if error.status == 401 and request.method == "GET" and "text/event-stream" not in request.headers.get(
                "accept", ""):
            back = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            root = str(request.scope.get("root_path", ""))
            return RedirectResponse(f"{root}/sign-in?next={back}", status_code=303)
        return console.page(request, "error.html", _who(console, request), error.status, title="Not allowed",
                            message=error.message)

    @app.exception_handler(SessionflowError)
    async def failed(request: Request, error: SessionflowError) -> Response:
        status = status_for(error)
        title = "Not found" if status == 404 else "Refused" if status < 500 else "The store failed"
        return console.page(request, "error.html", _who(console, request), status, title=title,
                            message=str(error))

    return app


def _who(console: Console, request: Request) -> SignedIn | None:
    """Who an error page is shown to (its header names them), or ``None`` when the request has no sign-in."""
    try:
        return console.who(request)
    except Denied:
        return None
