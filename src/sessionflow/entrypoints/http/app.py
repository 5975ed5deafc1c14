"""``create_app``: the one place that assembles the HTTP service from its parts.

It turns the tokens into a :class:`~.auth.BearerAuth`, picks the metrics to serve, keeps them and the manager
on ``app.state`` (:mod:`~.state`), installs the error handlers (:mod:`~.errors`), includes the routers
(:mod:`~.routers.sessions`, :mod:`~.routers.seed`, :mod:`~.routers.health`, in that order) and installs the
OpenAPI document (:mod:`~.openapi`). It never reads the environment (that is :mod:`~.environment`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from sessionflow import __version__
from sessionflow.entrypoints.http.auth import BearerAuth, token_table
from sessionflow.entrypoints.http.errors import install_error_handlers
from sessionflow.entrypoints.http.openapi import install_openapi
from sessionflow.entrypoints.http.routers import health, seed, sessions
from sessionflow.entrypoints.http.state import share

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sessionflow import SessionManager
    from sessionflow.adapters.metrics import SessionflowMetrics

__all__ = ["create_app"]


def create_app(
    manager: SessionManager,
    *,
    tokens: Mapping[str, str] | None = None,
    enforce_owner: bool | None = None,
    registry: CollectorRegistry | None = None,
    metrics: SessionflowMetrics | bool | None = None,
    title: str = "sessionflow",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The HTTP service over ``manager`` (which the caller owns and closes).

    Args:
        manager: the manager every route calls.
        tokens: bearer tokens mapped to performer ids. When given, every ``/sessions`` and
            ``/session_manager`` route needs ``Authorization: Bearer <token>`` (else 401) and the performer
            is the token's. ``None``: no authentication; writes name their ``performer_id``. An empty
            mapping is refused (:class:`~sessionflow.errors.InvalidInput`) rather than read as "no auth".
        enforce_owner: only a session's user (or a ``"system"`` performer) may change it. Default: on
            when tokens are given, else the manager's policy. The manager's own policy always applies.
        registry: the ``prometheus_client`` registry to put the metrics in and serve on ``/metrics``
            (default: a new one for this app).
        metrics: a :class:`~sessionflow.adapters.metrics.SessionflowMetrics` already instrumenting
            ``manager`` to serve instead; ``False`` for no ``/metrics``.
        lifespan: passed to FastAPI (startup/shutdown work of the host).
    """
    table = token_table(tokens) if tokens is not None else None
    owner_check = (bool(table) if enforce_owner is None else bool(enforce_owner)) and not manager.enforce_owner
    served = _metrics_for(manager, registry, metrics)

    app = FastAPI(
        title=title,
        version=__version__,
        summary="Durable, event-sourced session lifecycles over HTTP.",
        description=("Sessions move through pending → in_progress → completed | failed | expired; every change "
                     "is a recorded event. Errors are JSON objects naming the error and the session "
                     "(see ErrorBody). Invalid input is 400; a stale If-Match is 412."),
        lifespan=lifespan,
    )
    share(app, manager=manager, auth=BearerAuth(table) if table is not None else None, owner_check=owner_check,
          metrics=served)
    install_error_handlers(app)
    secured = table is not None
    app.include_router(sessions.router(secured=secured))
    app.include_router(seed.router(secured=secured))
    app.include_router(health.router(metrics=served is not None))
    install_openapi(app)
    return app


def _metrics_for(manager: SessionManager, registry: CollectorRegistry | None,
                 metrics: SessionflowMetrics | bool | None) -> SessionflowMetrics | None:
    if metrics is False:
        return None
    if metrics is not None and metrics is not True:
        return metrics
    try:
        from prometheus_client import CollectorRegistry as Registry

        from sessionflow.adapters.metrics import SessionflowMetrics as Metrics
    except ImportError:  # pragma: no cover - the metrics extra is not installed
        if metrics is True:
            raise
        return None
    return Metrics(Registry() if registry is None else registry).instrument(manager)
