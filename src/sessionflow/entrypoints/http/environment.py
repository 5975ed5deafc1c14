"""The service as ``sessionflow serve`` and ``uvicorn --factory`` run it: :func:`app_from_env` reads the
settings and the bearer tokens from the environment, opens the manager, and ties the timeout waker and the
manager's closing to the app's lifespan.

This is the only module of the HTTP service that reads the environment or a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fastapi import FastAPI

from sessionflow.entrypoints.http.app import create_app
from sessionflow.errors import InvalidInput

if TYPE_CHECKING:
    from sessionflow import SessionManager, Settings

__all__ = ["TOKENS_ENV", "TOKENS_FILE_ENV", "app_from_env"]

#: Environment variables read by :func:`app_from_env` (besides the settings' ``SESSIONFLOW_…``).
TOKENS_ENV: Final = "SESSIONFLOW_HTTP_TOKENS"
TOKENS_FILE_ENV: Final = "SESSIONFLOW_HTTP_TOKENS_FILE"


def _tokens_from_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    raw = environ.get(TOKENS_ENV)
    source = TOKENS_ENV
    path = environ.get(TOKENS_FILE_ENV)
    if path:
        if raw:
            raise InvalidInput(TOKENS_ENV, f"set {TOKENS_ENV} or {TOKENS_FILE_ENV}, not both")
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidInput(TOKENS_FILE_ENV, f"cannot read {path!r}: {error.strerror}") from None
        source = TOKENS_FILE_ENV
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidInput(source, 'expected a JSON object of token → performer id, e.g. {"s3cret": "alice"}') \
            from None
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise InvalidInput(source, "expected a non-empty JSON object of token (string) → performer id (string)")
    return data


def app_from_env(settings: Settings | None = None, *, environ: Mapping[str, str] | None = None,
                 timeouts: bool = True) -> FastAPI:
    """The service as ``sessionflow serve`` runs it: settings from ``SESSIONFLOW_…`` variables.

    Reads :class:`~sessionflow.settings.Settings` (database URL, timeouts, policies) unless ``settings`` is
    given, and the bearer tokens from ``SESSIONFLOW_HTTP_TOKENS`` (a JSON object token → performer id) or
    the JSON file named by ``SESSIONFLOW_HTTP_TOKENS_FILE``; neither set: no authentication. The manager is
    opened now; while the app runs the timeout waker runs too (``timeouts=False``: not), and the manager is
    closed on shutdown. Metrics go to ``prometheus_client``'s default registry. Usable as a uvicorn
    factory: ``uvicorn --factory sessionflow.entrypoints.http:app_from_env``.
    """
    from prometheus_client import REGISTRY

    from sessionflow import Settings as SettingsClass
    from sessionflow.adapters.metrics import SessionflowMetrics

    env = os.environ if environ is None else environ
    tokens = _tokens_from_env(env)
    config = settings if settings is not None else SettingsClass.from_env()
    manager = _open_manager(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if timeouts:
                manager.start_timeouts()
            yield
        finally:
            manager.close()  # stops the waker too

    try:
        metrics = SessionflowMetrics(REGISTRY).instrument(manager)
    except ValueError:  # already registered in this process (a second app): keep a private registry
        metrics = None
    return create_app(manager, tokens=tokens, metrics=metrics, lifespan=lifespan)


def _open_manager(settings: Settings) -> SessionManager:
    from sessionflow import SessionManager

    return SessionManager.from_settings(settings)
