"""The HTTP service: a thin FastAPI layer over a :class:`~sessionflow.SessionManager` (extra ``http``).

:func:`create_app` builds the app from explicit arguments and never reads the environment;
:func:`app_from_env` (used by ``sessionflow serve`` and ``uvicorn --factory
sessionflow.entrypoints.http:app_from_env``) reads the settings and the tokens from the environment, opens the
database and runs the timeout waker while the app is up.

Every handler calls one manager method (two for the compatibility routes) and maps its errors; the rules
live in the library. See ``docs/http.md`` for the routes, the error table, authentication and ``If-Match``.

The package, one job a module: :mod:`~.app` (``create_app``, assembling the rest), :mod:`~.environment`
(``app_from_env``), the routers in :mod:`~.routers` (sessions, the compatibility routes, health and
metrics), :mod:`~.bodies` (request and response bodies), :mod:`~.auth` (bearer tokens and the caller),
:mod:`~.state` (what the app shares with its routes), :mod:`~.errors` (statuses, error bodies, exception
handlers) and :mod:`~.openapi` (the OpenAPI document).
"""

from sessionflow.entrypoints.http.app import create_app
from sessionflow.entrypoints.http.bodies import SERVICE_SOURCE
from sessionflow.entrypoints.http.environment import app_from_env
from sessionflow.entrypoints.http.errors import ErrorBody, status_for

__all__ = ["SERVICE_SOURCE", "ErrorBody", "app_from_env", "create_app", "status_for"]
