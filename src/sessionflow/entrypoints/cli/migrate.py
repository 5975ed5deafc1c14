"""``sessionflow migrate-store --from URL --to URL``: copy every session from one store to another, verify the
copy, and report — the way onto the Redis store and the way back (SQLite / PostgreSQL <-> Redis, or between two
SQL databases).

Each session is read from the source with its projection and history together (one snapshot) and appended to
the target as one change: its whole history, with the source's projection (versions, record ids, timestamps,
performers and payloads unchanged). The target must hold no session. The copy is then verified: every
session's history and projection in the target equal the source's, and folding each target history gives its
projection (``verify``). Feed positions are the target's own (each store numbers its feed; the copy appends
session by session), so feed consumers start again from the target's positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from sessionflow.application.ports import Change, EventStore
from sessionflow.entrypoints.cli.errors import ExitCode
from sessionflow.entrypoints.cli.options import JsonOption, globals_of
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.entrypoints.cli.render import Output
from sessionflow.entrypoints.cli.running import handled, register_lifecycles
from sessionflow.errors import InvalidInput

__all__ = ["MigrationReport", "copy_store", "migrate_store", "open_any_store", "verify_copy"]


@dataclass
class MigrationReport:
    """What a copy did: sessions and events copied, and every difference the verification found."""

    source: str
    target: str
    sessions: int = 0
    events: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "sessions": self.sessions, "events": self.events,
                "verified": self.verified, "differences": self.differences}


def open_any_store(url: str) -> EventStore:
    """The store ``url`` names: Redis (``redis://``...) or a SQL database (schema brought up to date)."""
    from sessionflow.bootstrap import create_redis_store, create_store, is_redis_url

    if is_redis_url(url):
        store: EventStore = create_redis_store(url)
        return store
    return create_store(url)


def copy_store(source: EventStore, target: EventStore, report: MigrationReport,
               progress: Callable[[int], object] | None = None) -> MigrationReport:
    """Append every session of ``source`` to ``target`` (which must hold none); counts go to ``report``."""
    if target.session_ids():
        raise InvalidInput("to", "the target store already holds sessions: copy only into an empty store")
    for sid in sorted(source.session_ids(), key=str):
        session, events = source.read_together(sid)
        if session is None or not events:
            report.differences.append(f"{sid}: no projection or no events in the source; not copied")
            continue
        target.append(Change(session=session, events=tuple(events), expected_version=0))
        report.sessions += 1
        report.events += len(events)
        if progress is not None:
            progress(1)
    return report


def _strip(events: list[Any]) -> list[Any]:
    return [e.evolve(position=None) for e in events]


def verify_copy(source: EventStore, target: EventStore, report: MigrationReport) -> MigrationReport:
    """Compare every session's history and projection in ``target`` with ``source``'s, and fold each target
    history (``verify``); each difference is added to ``report``."""
    from sessionflow.application.manager import SessionManager

    source_ids = set(source.session_ids())
    target_ids = set(target.session_ids())
    for sid in sorted(source_ids ^ target_ids, key=str):
        report.differences.append(f"{sid}: only in the {'source' if sid in source_ids else 'target'}")
    for sid in sorted(source_ids & target_ids, key=str):
        session, events = source.read_together(sid)
        copied, copied_events = target.read_together(sid)
        if _strip(events) != _strip(copied_events):
            report.differences.append(f"{sid}: the histories differ")
        if session != copied:
            report.differences.append(f"{sid}: the projections differ")
    checker = SessionManager(target, owns_store=False)
    try:
        report.differences.extend(f"{d.session_id}: {d.field} projected {d.projected!r}, replayed {d.replayed!r}"
                                  for d in checker.verify())
    finally:
        checker.close()
    return report


def migrate(source_url: str, target_url: str) -> MigrationReport:
    """Copy ``source_url``'s sessions into ``target_url``, verify, and return the report."""
    if source_url == target_url:
        raise InvalidInput("to", "the source and the target are the same store")
    report = MigrationReport(mask_url(source_url), mask_url(target_url))
    source = open_any_store(source_url)
    try:
        target = open_any_store(target_url)
        try:
            copy_store(source, target, report)
            verify_copy(source, target, report)
        finally:
            target.close()
    finally:
        source.close()
    return report


@handled
def migrate_store(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--from", metavar="URL", help="The store to copy from.",
                                        show_default=False)],
    target: Annotated[str, typer.Option("--to", metavar="URL", help="The empty store to copy into.",
                                        show_default=False)],
    json_output: JsonOption = False,
) -> None:
    """Copy every session (its whole history) from one store to another, verify the copy and report.

    URLs: sqlite:///file.db, postgresql+psycopg://..., redis://host:port/db. Run it while nothing writes to the
    source; exits 9 when the verification finds a difference.
    """
    g = globals_of(ctx)
    register_lifecycles(g.lifecycles)
    out = Output(json_mode=json_output or g.json)
    report = migrate(source, target)
    if out.json:
        out.document(report.to_dict())
    else:
        out.print(f"copied {report.sessions} session{'s' if report.sessions != 1 else ''} "
                  f"({report.events} events) from {report.source} to {report.target}")
        for difference in report.differences:
            out.print(f"difference: {difference}")
        out.print("verified: the copy equals the source" if report.verified else
                  f"NOT verified: {len(report.differences)} difference(s)")
    if not report.verified:
        raise typer.Exit(int(ExitCode.INCONSISTENT))

