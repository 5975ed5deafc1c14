"""``create_app``: the one place that assembles the HTTP service from its parts.

It turns the tokens into a :class:`~.auth.BearerAuth` over a :class:`~.principals.TokenTable`, picks the
metrics to serve, keeps them and the manager on ``app.state`` (:mod:`~.state`), installs the body limit
(:mod:`~.limits`) and the error handlers (:mod:`~.errors`), includes the routers (:mod:`~.routers.sessions`,
:mod:`~.routers.events`, :mod:`~.routers.seed`, :mod:`~.routers.health`, in that order) and installs the
OpenAPI document (:mod:`~.openapi`), and keeps the app's :class:`~.stopping.Stopping` flag on ``app.state.stopping``
(set when the service stops: ``/readyz`` then answers 503), and honours an incoming ``traceparent``
(:mod:`~.tracecontext`: FastAPI's own server spans, or a middleware where FastAPI has none). It never reads the
environment (that is :mod:`~.environment`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from sessionflow import SYSTEM, __version__
from sessionflow.application.async_manager import AsyncManagerCore
from sessionflow.entrypoints.http.auth import BearerAuth, CheckedTokens, TokenSource
from sessionflow.entrypoints.http.errors import install_error_handlers
from sessionflow.entrypoints.http.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from sessionflow.entrypoints.http.openapi import install_openapi, route_scopes
from sessionflow.entrypoints.http.principals import Scope, Service, TokenTable
from sessionflow.entrypoints.http.routers import events, health, seed, sessions
from sessionflow.entrypoints.http.state import share
from sessionflow.entrypoints.http.stopping import CloseWhenStopping, Stopping
from sessionflow.entrypoints.http.tracecontext import install_trace_context
from sessionflow.errors import InvalidInput

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sessionflow import SessionManager
    from sessionflow.adapters.metrics import SessionflowMetrics

__all__ = ["check_tokens_for", "create_app"]


def create_app(
    manager: SessionManager,
    *,
    tokens: Mapping[str, Any] | TokenSource | None = None,
    enforce_owner: bool | None = None,
    registry: CollectorRegistry | None = None,
    metrics: SessionflowMetrics | bool | None = None,
    title: str = "sessionflow",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The HTTP service over ``manager`` (which the caller owns and closes).

    Args:
        manager: the manager every route calls.
        tokens: bearer tokens mapped to principals (``docs/http.md``, "Who may do what"): a user id
            (``"alice"``), ``{"user": "alice"}``, ``{"service": "worker", "scopes": ["sessions:write"]}``,
            or a :class:`~.principals.User` / :class:`~.principals.Service`; a key may be a token or
            ``"sha256:<hex digest>"``. Or a token source (a :class:`~.principals.TokenTable`, or a
            :class:`~.environment.TokenFile` that follows its file). When given, every ``/sessions`` and
            ``/session_manager`` route needs ``Authorization: Bearer <token>`` (else 401), the performer is
            the principal, a user principal reaches only its own sessions and a service only what its
            scopes allow. ``None``: no authentication; writes name their ``performer_id``. An empty or
            malformed mapping is refused (:class:`~sessionflow.errors.InvalidInput`).
        enforce_owner: without tokens, only a session's user (or a ``"system"`` performer) may change it
            (default: the manager's policy, which always applies). With tokens users are always limited to
            their own sessions: ``False`` is refused.
        registry: the ``prometheus_client`` registry to put the metrics in and serve on ``/metrics``
            (default: a new one for this app).
        metrics: a :class:`~sessionflow.adapters.metrics.SessionflowMetrics` already instrumenting
            ``manager`` to serve instead; ``False`` for no ``/metrics``.
        lifespan: passed to FastAPI (startup/shutdown work of the host).
        max_body_bytes: a request body over this many bytes is refused with 413 before it is read whole.

    Raises :class:`~sessionflow.errors.InvalidInput` for a token configuration the manager cannot honour
    (see :func:`check_tokens_for`), and for an :class:`~sessionflow.AsyncSessionManager`: the routes call the
    manager from FastAPI's thread pool and need a :class:`~sessionflow.SessionManager`.
    """
    if isinstance(manager, AsyncManagerCore):
        raise InvalidInput("manager", "create_app needs a SessionManager, not an AsyncSessionManager: pass "
                                      "SessionManager.open(url) (or SessionManager.from_settings(...)) on the same "
                                      "store")
    source = _token_source(tokens)
    if source is not None:
        if enforce_owner is False:
            raise InvalidInput("enforce_owner", "with tokens, user principals always reach only their own "
                                                "sessions; give a service principal the access it needs")
        if manager.enforce_owner:
            source = CheckedTokens(source, lambda table: check_tokens_for(manager, table))
    owner_check = source is None and bool(enforce_owner) and not manager.enforce_owner
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
    share(app, manager=manager, auth=BearerAuth(source) if source is not None else None, owner_check=owner_check,
          metrics=served)
    app.state.stopping = Stopping()  # set when the service stops (see sessionflow.entrypoints.http.stopping)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(CloseWhenStopping, stopping=app.state.stopping)
    install_trace_context(app)  # an incoming traceparent, where FastAPI does not trace requests itself
    install_error_handlers(app)
    secured = source is not None
    routers = [sessions.router(secured=secured), events.router(secured=secured), seed.router(secured=secured),
               health.router(metrics=served is not None)]
    for router in routers:
        app.include_router(router)
    install_openapi(app, route_scopes(routers))
    return app


def check_tokens_for(manager: SessionManager, table: TokenTable) -> None:
    """Refuse a token table the manager would contradict: with the manager's ``enforce_owner`` policy on,
    only a session's user or ``"system"`` may change it, so a service that writes must be named ``"system"``.

    Raises :class:`~sessionflow.errors.InvalidInput` naming the service (never a token).
    """
    if not manager.enforce_owner:
        return
    for principal in sorted(table.principals, key=lambda p: p.id):
        if (isinstance(principal, Service) and principal.id != SYSTEM
                and principal.scopes & {Scope.SESSIONS_WRITE, Scope.SESSIONS_ADMIN}):
            raise InvalidInput("tokens", f"service {principal.id!r} could not change users' sessions: the "
                                         "manager enforces owners (enforce_owner), which lets only a session's "
                                         f"user or {SYSTEM!r} change it; name the service {SYSTEM!r} or turn "
                                         "the policy off")


def _token_source(tokens: Mapping[str, Any] | TokenSource | None) -> TokenSource | None:
    if tokens is None:
        return None
    if isinstance(tokens, Mapping):
        return TokenTable.parse(tokens)
    return tokens


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
