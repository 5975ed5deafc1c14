"""The operator's console: sessions, one session, the feed and the lifecycles in a browser, live, served by the
HTTP service at ``/ui`` (``sessionflow serve`` mounts it unless ``--no-console``; a host FastAPI app mounts it
with :func:`mount_console`).

Server-rendered HTML (Jinja2 templates, the ``http`` extra), the browser's own ``EventSource`` for the live
parts, one small script and one stylesheet served from the package: no build step, nothing fetched from
elsewhere. It reads and writes only through the manager's public API, with the JSON API's rules: the same
tokens (a sign-in sets a signed cookie, :mod:`.access`), the same scopes, a user principal's own sessions only,
the principal as the performer, and the session's version on every write.

The modules: :mod:`.access` (sign-in cookie, form tokens, the loopback rule), :mod:`.app` (the app and its
error pages), :mod:`.web` (what the routes share, the templates), :mod:`.pages` (the read-only pages),
:mod:`.actions` (sign-in and the actions), :mod:`.live` (the streams), :mod:`.views` (what the templates show).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from sessionflow import InvalidInput, SessionManager
from sessionflow.entrypoints.http.auth import BearerAuth, TokenSource
from sessionflow.entrypoints.http.console.access import ConsoleAccess
from sessionflow.entrypoints.http.console.app import console_app
from sessionflow.entrypoints.http.principals import TokenTable

__all__ = ["PATH", "mount_console"]

#: Where the service serves the console.
PATH = "/ui"


def mount_console(app: FastAPI, manager: SessionManager | None = None, *,
                  tokens: Mapping[str, Any] | TokenSource | None = None, secret: str | bytes | None = None,
                  path: str = PATH, insecure_no_auth: bool = False, performer: str = "console") -> FastAPI:
    """Serve the console under ``path`` of ``app``; returns the console's own app (mounted).

    On an app of :func:`~sessionflow.entrypoints.http.create_app`, ``manager`` and ``tokens`` default to the
    app's own. ``tokens``: as ``create_app`` takes them; without any, the console answers only clients on the
    loopback interface (unless ``insecure_no_auth``: something in front restricts who reaches it) and acts as
    ``performer``. ``secret`` signs the sign-in cookies (at least 32 characters; give every process serving
    the store the same one, else each draws its own and a sign-in holds in that process only).
    """
    state = app.state
    if manager is None:
        manager = getattr(state, "manager", None)
        if manager is None:
            raise InvalidInput("manager", "give the manager the console reads (the app has none of its own)")
    source: TokenSource | None
    if tokens is None:
        auth: BearerAuth | None = getattr(state, "auth", None)
        source = auth.source if auth is not None else None
    elif isinstance(tokens, Mapping):
        source = TokenTable.parse(tokens)
    else:
        source = tokens
    key = secret.encode() if isinstance(secret, str) else secret
    if key is not None and len(key) < 32:
        raise InvalidInput("secret", "the console's secret needs at least 32 characters")
    if not path.startswith("/") or path.endswith("/"):
        raise InvalidInput("path", "expected a path such as /ui (a leading slash, no trailing one)")
    console = console_app(manager, ConsoleAccess(source, key, insecure_no_auth=insecure_no_auth),
                          performer=performer)
    app.mount(path, console, name="console")
    return console
