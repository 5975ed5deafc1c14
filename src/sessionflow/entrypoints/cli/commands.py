"""``Cli``: every command group's methods in one class, for a program (or ``sessionflow demo``) that drives the
commands as methods.

Importing this module imports every command group's module; the command line names it only when something
else did (see :func:`sessionflow.entrypoints.cli._built_cli`), so one command imports only its own group.
"""

from __future__ import annotations

from sessionflow.entrypoints.cli.apply import ApplyCommands
from sessionflow.entrypoints.cli.demo import DemoCommands
from sessionflow.entrypoints.cli.diagrams import DiagramCommands
from sessionflow.entrypoints.cli.feed import FeedCommands
from sessionflow.entrypoints.cli.maintenance import MaintenanceCommands
from sessionflow.entrypoints.cli.retention import RetentionCommands

__all__ = ["Cli"]


class Cli(DemoCommands, FeedCommands, MaintenanceCommands, DiagramCommands, RetentionCommands, ApplyCommands):
    """The commands of ``sessionflow`` as methods: each calls the manager and prints its result.

    Every command group's methods in one class (the session commands, ``history``/``export``, ``events``,
    ``worker``/``serve``, ``db upgrade``/``rebuild``/``verify``, ``diagram``, ``purge``, ``apply``). Once this
    class is built (named by a program, ``sessionflow demo`` or a test), every command of the command line runs
    through it; until then each runs through its own group's class, whose methods are the same.
    ``settings`` say where the database is and how sessions behave; the manager is opened on first use and
    closed by :meth:`close` (or leaving a ``with`` block). ``manager`` may be given instead (it is then not
    closed here).
    """
