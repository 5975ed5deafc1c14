"""What every command works with: the settings, the performer, the output and the manager.

Owns :class:`CommandContext`, the base of each command group's class (``SessionCommands``, ``HistoryCommands``
...) and so of :class:`~sessionflow.entrypoints.cli.Cli`, which combines them. It opens the
:class:`~sessionflow.SessionManager` from the settings on first use and closes it when the commands are done.
"""

from __future__ import annotations

import getpass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sessionflow.entrypoints.cli.render import Output

if TYPE_CHECKING:
    from sessionflow import SessionManager, Settings

__all__ = ["CommandContext", "default_performer"]


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
    closed here).
    """

    def __init__(self, settings: Settings | None = None, *, performer: str | None = None, json_mode: bool = False,
                 manager: SessionManager | None = None) -> None:
        self._settings = settings
        self.performer = performer or default_performer()
        self.out = Output(json_mode=json_mode)
        self._manager = manager
        self._owns_manager = manager is None

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
