"""The HTTP service: a thin FastAPI layer over a :class:`~sessionflow.SessionManager` (extra ``http``).

:func:`create_app` builds the app from explicit arguments and never reads the environment;
:func:`app_from_env` (used by ``sessionflow serve`` and ``uvicorn --factory
sessionflow.entrypoints.http:app_from_env``) reads the settings and the tokens from the environment, opens the
database and runs the timeout waker while the app is up.

Every handler calls one manager method (two for the compatibility routes) and maps its errors; the rules
live in the library. A bearer token stands for a principal: a :class:`User` (its own sessions only) or a
:class:`Service` with :class:`Scope` s. See ``docs/http.md`` for the routes, who may do what, the error
table and ``If-Match``.

The package, one job a module: :mod:`~.app` (``create_app``, assembling the rest), :mod:`~.environment`
(``app_from_env``, the tokens from the environment or a file), the routers in :mod:`~.routers` (sessions,
the compatibility routes, health and metrics), :mod:`~.bodies` (request and response bodies),
:mod:`~.principals` (principals, scopes and the token table), :mod:`~.auth` (bearer tokens → principals, the
scope of a route), :mod:`~.access` (what a caller may read and change), :mod:`~.limits` (the request body
limit), :mod:`~.state` (what the app shares with its routes), :mod:`~.errors` (statuses, error bodies,
exception handlers), :mod:`~.tracecontext` (an incoming ``traceparent``) and :mod:`~.openapi` (the OpenAPI
document).
"""

from sessionflow.entrypoints.http.app import create_app
from sessionflow.entrypoints.http.bodies import SERVICE_SOURCE
from sessionflow.entrypoints.http.environment import TokenFile, Unprotected, app_from_env, is_loopback
from sessionflow.entrypoints.http.errors import ErrorBody, status_for
from sessionflow.entrypoints.http.principals import Principal, Scope, Service, TokenTable, User

__all__ = ["SERVICE_SOURCE", "ErrorBody", "Principal", "Scope", "Service", "TokenFile", "TokenTable", "Unprotected",
           "User", "app_from_env", "create_app", "is_loopback", "status_for"]
