"""What every command works with: the settings, the performer, the output and the manager.

Owns :class:`CommandContext`, the base of each command group's class (``SessionCommands``, ``HistoryCommands``
...) and so of :class:`~sessionflow.entrypoints.cli.Cli`, which combines them. It opens the
:class:`~sessionflow.SessionManager` from the settings on first use and closes it when the commands are done;
a write's ``--idempotency-key`` becomes its handle (:meth:`CommandContext.idempotency_key`) and a write answered
from its stored key is noted on stderr (:meth:`CommandContext.answered`). Also owns :class:`SettingsSource`
(where a command's settings come from: the environment, a TOML file and the command line; read only when a
command needs more than the database's URL) and :func:`refuse_in_memory`: a command of the command line that
opens the database refuses an in-memory one (it would be gone when the command exits, so a ``create`` would
print the id of a session no later command can find).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sessionflow.entrypoints.cli.errors import CliError, ExitCode
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.entrypoints.cli.render import Output

if TYPE_CHECKING:
    from sessionflow import Session, SessionManager, Settings
    from sessionflow.application.idempotency import IdempotencyKey

__all__ = ["CommandContext", "SettingsSource", "default_performer", "in_memory_database", "refuse_in_memory"]

#: The environment variable of the database URL (the settings' ``database_url``).
DATABASE_URL_ENV = "SESSIONFLOW_DATABASE_URL"
#: Variables of sessionflow's prefix that are not settings: the command line and the HTTP service read them.
NOT_SETTINGS = frozenset({"SESSIONFLOW_PERFORMER", "SESSIONFLOW_HTTP_TOKENS", "SESSIONFLOW_HTTP_TOKENS_FILE"})


@dataclass(frozen=True)
class SettingsSource:
    """Where a command's settings come from: ``SESSIONFLOW_…`` variables of ``environ``, the TOML file
    ``config`` and the command line's ``overrides`` (``--db``), read by ``Settings.from_env`` when needed.

    When neither a file nor a variable sets anything but the database's URL (:attr:`defaults_only`), every
    other setting has its default, which is the manager's own default: a one-shot command then opens the
    manager from the URL alone and the settings' machinery is not loaded.
    """

    config: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def load(self) -> Settings:
        """The settings (``Settings.from_env``): raises ``SettingsError`` for an invalid one."""
        from sessionflow.settings import Settings

        return Settings.from_env(self.config, **self.overrides)

    @property
    def defaults_only(self) -> bool:
        """No file, and no variable but the database's URL (not empty): the settings are the defaults and
        :attr:`url`."""
        if self.config is not None or set(self.overrides) - {"database_url"}:
            return False
        urls = [value for name, value in self.environ.items() if name.upper() == DATABASE_URL_ENV]
        others = [name for name in self.environ if name.upper().startswith("SESSIONFLOW_")
                  and name.upper() not in NOT_SETTINGS and name.upper() != DATABASE_URL_ENV]
        if others or len(urls) > 1:
            return False
        return bool(self.overrides.get("database_url")) or not urls or bool(urls[0])

    @property
    def url(self) -> str:
        """The database URL of :attr:`defaults_only` settings: ``--db``, else the variable, else the default."""
        given = self.overrides.get("database_url")
        if given:
            return str(given)
        for name, value in self.environ.items():
            if name.upper() == DATABASE_URL_ENV:
                return value
        from sessionflow.bootstrap import DEFAULT_URL

        return DEFAULT_URL


def in_memory_database(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``,
    ``file::memory:``, any ``mode=memory``), which lives and dies with the process that opened it."""
    if not url.lower().startswith("sqlite"):
        return False
    from sessionflow.bootstrap import is_in_memory_url

    return is_in_memory_url(url)


def refuse_in_memory(url: str, option: str | None = None) -> None:
    """A usage error (exit 2) when ``url`` (given as ``option``, else ``--db`` or the environment) names an
    in-memory database: what a command wrote there would be gone when it exits."""
    if in_memory_database(url):
        where = f"{option} {mask_url(url)}" if option else f"the database {mask_url(url)}"
        raise CliError(f"{where} is in memory: it would be gone when this command exits, so nothing written there "
                       "could be read back; use an SQLite file (sqlite:///./sessionflow.db), PostgreSQL or Redis",
                       code="usage", exit_code=ExitCode.USAGE)


def default_performer() -> str:
    """Who writes when neither ``--performer`` nor ``SESSIONFLOW_PERFORMER`` says: the login name."""
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):  # no login name in this environment (e.g. a container's unknown uid)
        return "cli"


class CommandContext:
    """The settings, performer, output and manager that the commands share.

    ``settings`` say where the database is and how sessions behave (or ``source`` says where to read them, on
    first use); the manager is opened on first use and closed by :meth:`close` (or leaving a ``with`` block).
    ``manager`` may be given instead (it is then not closed here). With ``durable_only`` (as the command line
    runs them) an in-memory database is refused when the manager would be opened on it
    (:func:`refuse_in_memory`).
    """

    def __init__(self, settings: Settings | None = None, *, performer: str | None = None, json_mode: bool = False,
                 manager: SessionManager | None = None, durable_only: bool = False,
                 source: SettingsSource | None = None) -> None:
        self._settings = settings
        self._source = source
        self.performer = performer or default_performer()
        self.out = Output(json_mode=json_mode)
        self._manager = manager
        self._owns_manager = manager is None
        self.durable_only = durable_only

    @property
    def settings(self) -> Settings:
        """The settings given, or those of the source (the environment by default), read on first use."""
        if self._settings is None:
            self._settings = (self._source or SettingsSource()).load()
        return self._settings

    @property
    def _defaults_only(self) -> bool:
        return self._settings is None and self._source is not None and self._source.defaults_only

    @property
    def url(self) -> str:
        """The database URL (with its password: mask it before printing)."""
        if self._defaults_only and self._source is not None:
            return self._source.url
        return self.settings.database_url

    @property
    def manager(self) -> SessionManager:
        """The manager given, or one opened from the settings on first use (without a waker: one is built by
        ``start_timeouts``, by the commands that run timeouts)."""
        if self._manager is None:
            from sessionflow.bootstrap import SessionManager

            url = self.url
            if self.durable_only:
                refuse_in_memory(url)
            options = {} if self._defaults_only else self.settings.manager_options()
            self._manager = SessionManager.open(url, **options)
        return self._manager

    def close(self) -> None:
        """Close the manager if it was opened here."""
        if self._manager is not None and self._owns_manager:
            self._manager.close()
            self._manager = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @staticmethod
    def idempotency_key(key: str | None) -> IdempotencyKey | None:
        """The handle of ``--idempotency-key KEY`` (scoped to the write's performer), which tells after the write
        whether it was answered from the stored key; ``None`` without a key. The library checks the key."""
        if key is None:
            return None
        from sessionflow import IdempotencyKey

        return IdempotencyKey(key)

    def answered(self, session: Session, key: IdempotencyKey | None, *, verb: str) -> Session:
        """Print ``session`` as the write ``verb`` left it (a replayed write: as its first run left it, so the
        output is the first run's) and, when ``key`` answered it, the one-line ``replayed:`` note on stderr."""
        self.out.session(session, verb=verb)
        if key is not None and key.replayed:
            self.out.replayed(key.key)
        return session

    def _total_sessions(self) -> int | None:
        """How many sessions a full pass visits, for a progress bar (counted only when one is drawn)."""
        if not self.out.interactive:
            return None
        return len(self.manager.store.session_ids())
