"""What every route of the console shares, :class:`Console`, and its templates.

:class:`Console` is what every route shares: the manager, the rules of access (:mod:`.access`) and the
templates. A route reads the request's :class:`~.access.SignedIn` with :meth:`Console.who`, calls the manager
(never a store: no SQL in the console) and renders a template with :meth:`Console.page`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sessionflow import SessionManager, __version__
from sessionflow.entrypoints.http.console import views
from sessionflow.entrypoints.http.console.access import ConsoleAccess, SignedIn

__all__ = ["HERE", "Console", "templates"]

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Console:
    """What the console's routes share."""

    manager: SessionManager
    access: ConsoleAccess
    templates: Jinja2Templates
    #: Who acts without tokens (with tokens: the signed-in principal).
    performer: str = "console"

    def who(self, request: Request) -> SignedIn:
        """The request's sign-in (see :meth:`ConsoleAccess.signed_in`)."""
        return self.access.signed_in(request)

    def page(self, request: Request, name: str, signed: SignedIn | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        """The template ``name`` rendered with ``context``, who is signed in and the navigation."""
        response = self.templates.TemplateResponse(
            request, name, {"signed": signed, "secured": self.access.secured, "sessionflow_version": __version__,
                            "root": str(request.scope.get("root_path", "")), **context},
            status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def templates() -> Jinja2Templates:
    """The console's templates, with their filters (HTML-escaped everywhere)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["stamp"] = views.stamp
    env.filters["duration"] = views.duration
    env.autoescape = True
    return templates
