"""The maintenance commands: ``db upgrade`` (the schema), ``rebuild`` and ``verify`` (the projection).

Owns :class:`MaintenanceCommands` and the typer functions of the three commands; ``verify`` exits 9 when the
projection and the events differ.
"""

from __future__ import annotations

from typing import Any

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import ExitCode
from sessionflow.entrypoints.cli.options import DbOption, JsonOption
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.entrypoints.cli.render import escape
from sessionflow.entrypoints.cli.running import handled, open_commands

__all__ = ["MaintenanceCommands", "db_upgrade", "rebuild", "verify"]


class MaintenanceCommands(CommandContext):
    """The database's upkeep: its schema, and its projection checked or rebuilt from the events."""

    def db_upgrade(self) -> dict[str, Any]:
        """Bring the schema to the newest revision; returns (and prints) the revisions before and after."""
        from sqlalchemy.exc import SQLAlchemyError

        from sessionflow.adapters.sqlalchemy.migrations import head_revision, upgrade
        from sessionflow.bootstrap import create_engine
        from sessionflow.errors import StoreError

        engine = create_engine(self.url)
        try:
            before = upgrade(engine)
        except SQLAlchemyError as error:
            raise StoreError(f"cannot upgrade the database: {getattr(error, 'orig', None) or error}") from error
        finally:
            engine.dispose()
        head = head_revision()
        result = {"database": mask_url(self.url), "from": before, "to": head, "changed": before != head}
        if self.out.json:
            self.out.document(result)
        elif before == head:
            self.out.print(f"{escape(mask_url(self.url))} is up to date (revision {head})")
        else:
            self.out.print(f"upgraded {escape(mask_url(self.url))} from {before or 'an empty database'} to {head}")
        return result

    def rebuild(self) -> int:
        """Rebuild the projection from the events; returns how many sessions."""
        manager = self.manager
        with self.out.progress("rebuilding the projection", self._total_sessions()) as advance:
            count = manager.rebuild(progress=advance)
        if self.out.json:
            self.out.document({"rebuilt": count})
        else:
            self.out.print(f"rebuilt {count} session" + ("" if count == 1 else "s") + " from their events")
        return count

    def verify(self) -> int:
        """Compare the projection with the events; returns the number of differences (printed)."""
        manager = self.manager
        with self.out.progress("verifying the projection", self._total_sessions()) as advance:
            differences = manager.verify(progress=advance)
        self.out.differences(differences)
        return len(differences)


@handled
def db_upgrade(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Bring the database schema up to date (other commands do it too, on first use)."""
    with open_commands(ctx, MaintenanceCommands, db=db, json_output=json_output) as cli:
        cli.db_upgrade()


@handled
def rebuild(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Rebuild the sessions table from the events (run it while nothing else writes)."""
    with open_commands(ctx, MaintenanceCommands, db=db, json_output=json_output) as cli:
        cli.rebuild()


@handled
def verify(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Check the sessions table against the events; exit 9 if they differ."""
    with open_commands(ctx, MaintenanceCommands, db=db, json_output=json_output) as cli:
        if cli.verify():
            raise typer.Exit(int(ExitCode.INCONSISTENT))
