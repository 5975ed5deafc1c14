"""What every command works with: the settings, the performer, the output and the manager.

Owns :class:`CommandContext`, the base of each command group's class (``SessionCommands``, ``HistoryCommands``
...) and so of :class:`~sessionflow.entrypoints.cli.Cli`, which combines them. It opens the
:class:`~sessionflow.SessionManager` from the settings on first use and closes it when the commands are done.
Also owns :func:`refuse_in_memory`: a command of the command line that opens the database refuses an in-memory
one (it would be gone when the command exits, so a ``create`` would print the id of a session no later command
can find).
"""

from __future__ import annotations

import getpass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sessionflow.entrypoints.cli.errors import CliError, ExitCode
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.entrypoints.cli.render import Output

if TYPE_CHECKING:
    from sessionflow import SessionManager, Settings

__all__ = ["CommandContext", "default_performer", "in_memory_database", "refuse_in_memory"]


def in_memory_database(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``,
    ``file::memory:``, any ``mode=memory``), which lives and dies with the process that opened it."""
    if not url.lower().startswith("sqlite"):
        return False
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # not ours to judge: opening the store reports a malformed URL
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    mode = parsed.query.get("mode")
    modes = mode if isinstance(mode, tuple) else (mode,)
    return (database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database
            or "memory" in modes)


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

    ``settings`` say where the database is and how sessions behave; the manager is opened on first use and
    closed by :meth:`close` (or leaving a ``with`` block). ``manager`` may be given instead (it is then not
    closed here). With ``durable_only`` (as the command line runs them) an in-memory database is refused when the
    manager would be opened on it (:func:`refuse_in_memory`).
    """

    def __init__(self, settings: Settings | None = None, *, performer: str | None = None, json_mode: bool = False,
                 manager: SessionManager | None = None, durable_only: bool = False) -> None:
        self._settings = settings
        self.performer = performer or default_performer()
        self.out = Output(json_mode=json_mode)
        self._manager = manager
        self._owns_manager = manager is None
        self.durable_only = durable_only

    @property
    def settings(self) -> Settings:
        """The settings given, or those of the environment."""
        if self._settings is None:
            from sessionflow import Settings

            self._settings = Settings()
        return self._settings

    @property
    def url(self) -> str:
        """The database URL (with its password: mask it before printing)."""
        return self.settings.database_url

    @property
    def manager(self) -> SessionManager:
        """The manager given, or one opened from the settings on first use."""
        if self._manager is None:
            from sessionflow import SessionManager

            if self.durable_only:
                refuse_in_memory(self.url)
            self._manager = SessionManager.from_settings(self.settings)
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

    def _total_sessions(self) -> int | None:
        """How many sessions a full pass visits, for a progress bar (counted only when one is drawn)."""
        if not self.out.interactive:
            return None
        return len(self.manager.store.session_ids())
