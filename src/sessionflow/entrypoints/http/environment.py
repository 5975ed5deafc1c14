"""The service as ``sessionflow serve`` and ``uvicorn --factory`` run it: :func:`app_from_env` reads the
settings and the bearer tokens from the environment, opens the manager, and ties the timeout waker and the
manager's closing to the app's lifespan.

The tokens come from ``SESSIONFLOW_HTTP_TOKENS`` (a JSON object) or the JSON file named by
``SESSIONFLOW_HTTP_TOKENS_FILE``, which a :class:`TokenFile` follows: an edited file is in force within a
second, without a restart, so a token is rotated by adding the new one beside the old and removing the old
once clients have moved. This is the only module of the HTTP service that reads the environment or a file.

Several worker processes (``sessionflow serve --workers N``) each build their app with :func:`worker_app`, a
uvicorn factory: the serving process hands its settings down as ``SESSIONFLOW_…`` variables
(:func:`settings_environ`), plus whether to run the timeout waker and which lifecycle files to register.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI
from pydantic import SecretStr

from sessionflow.entrypoints.http.app import create_app
from sessionflow.entrypoints.http.auth import TokenSource
from sessionflow.entrypoints.http.principals import TokenTable
from sessionflow.entrypoints.http.stopping import relay_stop_signals, stopping_of
from sessionflow.errors import InvalidInput

if TYPE_CHECKING:
    from sessionflow import SessionManager, Settings

__all__ = ["TOKENS_ENV", "TOKENS_FILE_ENV", "WORKER_APP", "WORKER_LIFECYCLES_ENV", "WORKER_TIMEOUTS_ENV", "TokenFile",
           "Unprotected", "app_from_env", "console_environ", "is_loopback", "settings_environ",
           "shared_between_processes", "tokens_from_env", "worker_app"]

logger = logging.getLogger("sessionflow.http")

#: Environment variables read by :func:`app_from_env` (besides the settings' ``SESSIONFLOW_…``).
TOKENS_ENV: Final = "SESSIONFLOW_HTTP_TOKENS"
TOKENS_FILE_ENV: Final = "SESSIONFLOW_HTTP_TOKENS_FILE"
#: Read by :func:`worker_app`: ``"0"`` to run no timeout waker in the worker (default: run one).
WORKER_TIMEOUTS_ENV: Final = "SESSIONFLOW_SERVE_TIMEOUTS"
#: Read by :func:`worker_app`: a JSON list of lifecycle files (YAML/JSON) to register before serving.
WORKER_LIFECYCLES_ENV: Final = "SESSIONFLOW_SERVE_LIFECYCLES"
#: The import string of :func:`worker_app`, for ``uvicorn --factory``.
WORKER_APP: Final = "sessionflow.entrypoints.http.environment:worker_app"
_FORMAT: Final = ('a JSON object of token → principal, e.g. {"s3cret": "alice", "0rch": {"service": "scheduler", '
                  '"scopes": ["sessions:read", "sessions:write"]}}')


class Unprotected(Exception):
    """``serve`` was asked to listen beyond the loopback interface with no tokens configured."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.message = (
            f"refusing to serve on {host} without authentication: anyone who can reach that address could read, "
            f"change and delete every session. Configure bearer tokens ({TOKENS_ENV} or {TOKENS_FILE_ENV}), "
            "listen on a loopback address (--host 127.0.0.1), or pass --insecure-no-auth if something in front "
            "of the service already restricts who reaches it")
        super().__init__(self.message)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only the loopback interface (``localhost``, ``127.x.x.x``, ``::1``).

    Anything else — ``0.0.0.0``, ``::``, an interface address, another host name — may be reachable from
    other machines.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _parse(raw: str, source: str) -> TokenTable:
    """The token table of ``raw`` (JSON), or :class:`~sessionflow.InvalidInput` naming ``source`` — also for JSON
    nested too deeply to read, which is invalid configuration like any other malformed table."""

    def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for position, (key, value) in enumerate(pairs, start=1):
            if key in result:
                raise InvalidInput(source, f"entry {position} repeats an earlier token")
            result[key] = value
        return result

    try:
        data = json.loads(raw, object_pairs_hook=no_repeats)
        if not isinstance(data, dict):
            raise InvalidInput(source, f"expected {_FORMAT}")
        return TokenTable.parse(data, source=source)
    except RecursionError:
        raise InvalidInput(source, f"nested too deeply to read; expected {_FORMAT}") from None
    except ValueError as error:
        if isinstance(error, InvalidInput):
            raise
        raise InvalidInput(source, f"expected {_FORMAT}") from None


class TokenFile:
    """The tokens of a JSON file, re-read when the file changes (checked at most every ``check_every``
    seconds, on the next request).

    The first read raises :class:`~sessionflow.InvalidInput` for a missing or malformed file. Later, a
    file that cannot be read or is malformed (half-written, nested too deeply, ...) — a reload that fails in
    any way — is logged as a warning, by its problem and never a token, and the tokens in force stay.
    """

    def __init__(self, path: str | Path, *, check_every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp, self._table = self._read()
        self._next_check = clock() + check_every

    def _read(self) -> tuple[tuple[int, int, int], TokenTable]:
        try:
            info = self.path.stat()
            raw = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise InvalidInput(TOKENS_FILE_ENV, f"cannot read {str(self.path)!r}: {reason}") from None
        return (info.st_mtime_ns, info.st_size, info.st_ino), _parse(raw, TOKENS_FILE_ENV)

    def current(self) -> TokenTable:
        """The tokens in force: the file's, as of its last change that could be read."""
        if self._clock() < self._next_check:
            return self._table
        with self._lock:
            if self._clock() >= self._next_check:
                self._next_check = self._clock() + self._check_every
                self._reload()
        return self._table

    def _reload(self) -> None:
        """Read the file again if it changed; on any failure keep the tokens in force (and say why, as a
        warning naming the problem, never a token)."""
        try:
            info = self.path.stat()
        except OSError as error:
            logger.warning("tokens file %s: %s; the previous tokens stay in force", self.path, error.strerror)
            return
        if (info.st_mtime_ns, info.st_size, info.st_ino) == self._stamp:
            return
        try:
            self._stamp, self._table = self._read()
        except InvalidInput as error:
            problem = error.problem
        except Exception as error:  # whatever it is, a request must not fail for it
            problem = f"unexpected {type(error).__name__}"
        else:
            logger.info("tokens file %s reloaded: %d tokens", self.path, len(self._table))
            return
        logger.warning("tokens file %s not reloaded: %s; the previous tokens stay in force", self.path, problem)


def tokens_from_env(environ: Mapping[str, str]) -> TokenSource | None:
    """The tokens of ``SESSIONFLOW_HTTP_TOKENS`` or of the file of ``SESSIONFLOW_HTTP_TOKENS_FILE`` (a
    :class:`TokenFile`), or ``None`` when neither is set. Raises :class:`~sessionflow.InvalidInput`."""
    raw = environ.get(TOKENS_ENV)
    path = environ.get(TOKENS_FILE_ENV)
    if path:
        if raw:
            raise InvalidInput(TOKENS_ENV, f"set {TOKENS_ENV} or {TOKENS_FILE_ENV}, not both")
        return TokenFile(path)
    if not raw:
        return None
    return _parse(raw, TOKENS_ENV)


def app_from_env(settings: Settings | None = None, *, environ: Mapping[str, str] | None = None,
                 timeouts: bool = True, host: str | None = None, insecure_no_auth: bool = False,
                 exit_after_grace: bool = False, console: bool = True,
                 on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The service as ``sessionflow serve`` runs it: settings from ``SESSIONFLOW_…`` variables.

    Reads :class:`~sessionflow.settings.Settings` (database URL, timeouts, policies, ``http.max_body_bytes``)
    unless ``settings`` is given, and the bearer tokens (:func:`tokens_from_env`); neither token variable
    set: no authentication. ``host``, when given, is the address the service will listen on: beyond the
    loopback interface without tokens it raises :class:`Unprotected` (unless ``insecure_no_auth``), before
    the database is opened. The manager is opened now; while the app runs the timeout waker runs too
    (``timeouts=False``: not), and the manager is closed on shutdown. Run by a server that handles SIGTERM and
    SIGINT in Python (uvicorn), the app stops as :mod:`~.stopping` says: ``/readyz`` answers 503 at once, the
    server is told to stop after ``http.drain_seconds``. ``exit_after_grace`` (what ``serve`` asks for): the
    process then ends itself, exit status 0, if it is still running ``http.grace_period_seconds`` after the
    signal (a request's thread stuck on a database lock would otherwise hold it). Metrics go to
    ``prometheus_client``'s default registry, and leave it when the app stops. The operator's console is served at
    ``/ui`` unless ``console`` is false or the setting ``http.console`` is off (see ``docs/console.md``). Usable as
    a uvicorn factory: ``uvicorn --factory sessionflow.entrypoints.http:app_from_env`` (which does not tell it the
    address: see ``docs/http.md``). ``on_shutdown`` is called last when the app's lifespan ends, after the manager
    is closed (a worker process of ``serve --workers`` flushes its spans there).
    """
    from prometheus_client import REGISTRY

    from sessionflow import Settings as SettingsClass
    from sessionflow.adapters.metrics import SessionflowMetrics

    env = os.environ if environ is None else environ
    tokens = tokens_from_env(env)
    if tokens is None and host is not None and not is_loopback(host) and not insecure_no_auth:
        raise Unprotected(host)
    config = settings if settings is not None else SettingsClass.from_env()
    manager = _open_manager(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        restore = relay_stop_signals(stopping_of(app), config.http.drain_seconds,
                                     exit_after=config.http.grace_period_seconds if exit_after_grace else None)
        try:
            if timeouts:
                manager.start_timeouts()
            yield
        finally:
            restore()
            try:
                manager.close()  # stops the waker (after the batch in hand) and the change watcher
            finally:
                if metrics is not None:  # the process's registry is free for the next app of this process
                    metrics.detach()
                    metrics.unregister()
                if on_shutdown is not None:
                    on_shutdown()

    try:
        metrics = SessionflowMetrics(REGISTRY).instrument(manager)
    except ValueError:  # already registered in this process (a second app): keep a private registry
        metrics = None
    try:
        app = create_app(manager, tokens=tokens, metrics=metrics, lifespan=lifespan,
                         max_body_bytes=config.http.max_body_bytes)
        if console and config.http.console:  # the operator's console at /ui, with the same tokens
            _mount_console(app, config, insecure_no_auth)
        return app
    except BaseException:  # e.g. tokens the manager's policy contradicts: leave nothing open or registered
        if metrics is not None:
            metrics.detach()
            metrics.unregister()
        manager.close()
        raise


def _mount_console(app: FastAPI, settings: Settings, insecure_no_auth: bool) -> None:
    """Serve the console at ``/ui`` (its templates need Jinja2, of the ``http`` extra: without it, say so and
    serve the API alone)."""
    import importlib.util

    if importlib.util.find_spec("jinja2") is None:
        logger.warning("the console at /ui is not served: Jinja2 is not installed (pip install 'sessionflow[http]')")
        return
    from sessionflow.entrypoints.http.console import mount_console

    secret = settings.http.console_key
    mount_console(app, secret=None if secret is None else secret.get_secret_value(), insecure_no_auth=insecure_no_auth)


def _open_manager(settings: Settings) -> SessionManager:
    from sessionflow import SessionManager
    from sessionflow.adapters.batchwise_waker import BatchwiseWaker

    return SessionManager.from_settings(settings,
                                        waker=BatchwiseWaker(cleanup_interval=settings.session.cleanup_interval))


def worker_app() -> FastAPI:
    """The app of one worker process of ``sessionflow serve --workers N`` (a uvicorn factory,
    :data:`WORKER_APP`): :func:`app_from_env` with the settings and tokens of the environment, after
    registering the lifecycle files listed in ``SESSIONFLOW_SERVE_LIFECYCLES``; the worker runs its own timeout
    waker unless ``SESSIONFLOW_SERVE_TIMEOUTS`` is ``0`` (several wakers on one database still expire each
    session exactly once). The OpenTelemetry SDK is configured from the ``OTEL_*`` variables when they ask for
    it, and shut down (its spans flushed) when the worker stops."""
    raw = os.environ.get(WORKER_LIFECYCLES_ENV, "").strip()
    if raw:
        from sessionflow.domain.definitions import default_registry
        from sessionflow.loader import load_definition

        files = json.loads(raw)
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise InvalidInput(WORKER_LIFECYCLES_ENV, "expected a JSON list of lifecycle files")
        registry = default_registry()
        for file in files:
            registry.register(load_definition(file))
    timeouts = os.environ.get(WORKER_TIMEOUTS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
    sdk = _start_otel_sdk()
    return app_from_env(timeouts=timeouts, exit_after_grace=True, on_shutdown=None if sdk is None else sdk.shutdown)


def _start_otel_sdk() -> Any | None:
    """The OpenTelemetry SDK of a worker process, configured from the ``OTEL_*`` variables when they ask for it
    (as ``serve`` does in its own process: :mod:`sessionflow.adapters.otel_env`); what to shut down, or
    ``None``. Without such a variable nothing of OpenTelemetry is imported here."""
    from sessionflow.adapters.otel_env import sdk_requested, start_sdk

    return start_sdk(os.environ) if sdk_requested(os.environ) else None


def console_environ(settings: Settings, console: bool) -> dict[str, str | None]:
    """What ``serve --workers`` hands its workers about the console: off when ``console`` is false, and a
    secret drawn once for all of them when the settings give none (so a sign-in holds in every worker)."""
    import secrets

    from sessionflow.settings import env_name

    if not console:
        return {env_name(("http", "console")): "false"}
    if settings.http.console_key is not None:
        return {}
    return {env_name(("http", "console_key")): secrets.token_urlsafe(32)}


def settings_environ(settings: Settings) -> dict[str, str | None]:
    """``settings`` as the ``SESSIONFLOW_…`` environment variables that give them back through
    ``Settings.from_env()`` (``None``: unset the variable, for a setting that is ``None``)."""
    from sessionflow.settings import env_name

    def flatten(values: Mapping[str, Any], location: tuple[str, ...]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for key, value in values.items():
            if isinstance(value, Mapping):
                found.update(flatten(value, (*location, key)))
            elif value is None:
                found[env_name((*location, key))] = None
            elif isinstance(value, bool):
                found[env_name((*location, key))] = "true" if value else "false"
            elif isinstance(value, SecretStr):  # the console's secret: passed on as it is, to the workers
                found[env_name((*location, key))] = value.get_secret_value()
            else:
                found[env_name((*location, key))] = str(value)
        return found

    return flatten(settings.model_dump(), ())


def shared_between_processes(database_url: str) -> bool:
    """Whether several processes can serve one store at ``database_url``: not an in-memory SQLite database
    (``sqlite://``, ``sqlite:///:memory:``, ``mode=memory``), which lives and dies with its process. An SQLite
    file is shared by the processes of one machine; PostgreSQL and Redis by any."""
    from sessionflow.bootstrap import is_in_memory_url

    return not is_in_memory_url(database_url)
