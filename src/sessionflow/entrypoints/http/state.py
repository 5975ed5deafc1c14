"""What an app shares with its routes: the objects ``create_app`` keeps on ``app.state``, and the FastAPI
dependency that hands the manager to a route.

``app.state`` holds ``manager`` (the :class:`~sessionflow.SessionManager` every route calls), ``auth`` (the
:class:`~.auth.BearerAuth` over the token table, or ``None`` without authentication), ``owner_check`` (without
tokens: whether the app checks a session's owner on top of the manager's own policy) and ``metrics`` (the served
:class:`~sessionflow.adapters.metrics.SessionflowMetrics`, or ``None``). Nothing here is a module global: two
apps in one process share nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request

from sessionflow import SessionManager

if TYPE_CHECKING:
    from sessionflow.adapters.metrics import SessionflowMetrics
    from sessionflow.entrypoints.http.auth import BearerAuth

__all__ = ["ManagerDep", "manager_of", "share"]


def share(app: FastAPI, *, manager: SessionManager, auth: BearerAuth | None, owner_check: bool,
          metrics: SessionflowMetrics | None) -> None:
    """Keep on ``app.state`` what the routes, the error handlers and the OpenAPI document read."""
    app.state.manager = manager
    app.state.metrics = metrics
    app.state.auth = auth
    app.state.owner_check = owner_check


async def manager_of(request: Request) -> SessionManager:
    """The FastAPI dependency: the app's manager (``async``, so it costs no trip to the thread pool)."""
    manager: SessionManager = request.app.state.manager
    return manager


#: A route's parameter ``manager: ManagerDep`` is the app's manager.
ManagerDep = Annotated[SessionManager, Depends(manager_of)]
