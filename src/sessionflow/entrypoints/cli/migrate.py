"""``sessionflow migrate-store --from URL --to URL``: copy every session from one store to another, verify the
copy, and report — the way onto the Redis store and the way back (SQLite / PostgreSQL <-> Redis, or between two
SQL databases).

Each session is read from the source with its projection and history together (one snapshot) and appended to
the target as one change: its whole history, with the source's projection (versions, record ids, timestamps,
performers and payloads unchanged). The target must hold no session, unless ``--resume`` is given: then the
sessions it already holds are not copied again (each must equal the source's, which the verification checks)
and only the missing ones are. A session whose data the target refuses (PostgreSQL refuses a NUL character in
text and JSON, which an SQLite database may hold) is skipped and listed with the reason; every other session is
still copied, and the command exits 6. The copy is then verified: every copied session's history and projection
in the target equal the source's, and folding each target history gives its projection (``verify``). Feed
positions are the target's own (each store numbers its feed; the copy appends session by session), so feed
consumers start again from the target's positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from sessionflow.entrypoints.cli.context import refuse_in_memory
from sessionflow.entrypoints.cli.errors import ExitCode, one_line
from sessionflow.entrypoints.cli.logs import engine_logging
from sessionflow.entrypoints.cli.options import JsonOption, globals_of
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.entrypoints.cli.render import Output, escape
from sessionflow.entrypoints.cli.running import handled, register_lifecycles
from sessionflow.errors import InvalidInput, StoreError

if TYPE_CHECKING:
    from sessionflow.application.ports import EventStore

__all__ = ["MigrationReport", "copy_store", "migrate_store", "open_any_store", "refusal_reason", "verify_copy"]


@dataclass
class MigrationReport:
    """What a copy did: sessions and events copied, and every difference the verification found."""

    source: str
    target: str
    #: Sessions (and their events) copied by this run.
    sessions: int = 0
    events: int = 0
    #: With ``resume``: sessions the target already held, not copied again (the verification compares them).
    already_present: int = 0
    differences: list[str] = field(default_factory=list)
    #: The sessions the target refused, each with the reason: not copied.
    skipped: list[tuple[UUID, str]] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """No difference between the source and what the target holds (the skipped sessions aside)."""
        return not self.differences

    @property
    def complete(self) -> bool:
        """Every session of the source is in the target and verified (none skipped)."""
        return self.verified and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {"from": self.source, "to": self.target, "sessions": self.sessions, "events": self.events,
                "already_present": self.already_present, "verified": self.verified, "complete": self.complete,
                "differences": self.differences,
                "skipped": [{"session_id": str(sid), "reason": reason} for sid, reason in self.skipped]}


def open_any_store(url: str) -> EventStore:
    """The store ``url`` names, by its scheme: a SQL database (schema brought up to date), Redis
    (``redis://``...) or a backend package's store."""
    from sessionflow.bootstrap import create_store

    return create_store(url)


_DATA_ERRORS = frozenset({"DataError"})  # the DB-API's "a problem with the processed data", whatever the driver


def refusal_reason(error: BaseException) -> str | None:
    """Why a store's ``append`` refused the data itself (a value it cannot hold, such as PostgreSQL and a NUL
    character), as one line; ``None`` when ``error`` says something else (the store failed, a conflict)."""
    if isinstance(error, InvalidInput):
        return one_line(error.message)
    if not isinstance(error, StoreError):
        return None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(kind.__name__ in _DATA_ERRORS for kind in type(current).__mro__):
            details = [line.strip() for line in str(current).splitlines() if line.startswith("DETAIL:")]
            return one_line("; ".join([error.message, *details]))
        orig = getattr(current, "orig", None)  # a SQLAlchemy error wraps the driver's
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return None


def copy_store(source: EventStore, target: EventStore, report: MigrationReport,
               progress: Callable[[int], object] | None = None, *, resume: bool = False) -> MigrationReport:
    """Append every session of ``source`` to ``target``; counts go to ``report``.

    ``target`` must hold no session, unless ``resume``: then the sessions it holds are not copied again (and
    counted in ``report.already_present``; :func:`verify_copy` compares them). A session the target refuses for
    its data (:func:`refusal_reason`), or whose data cannot be read from the source (:class:`InvalidInput`), is
    listed in ``report.skipped`` and the copy goes on; any other error stops it.
    """
    present = set(target.session_ids())
    if present and not resume:
        raise InvalidInput("to", "the target store already holds sessions: copy only into an empty store, or "
                                 "give --resume to copy what is missing")
    for sid in _in_creation_order(source):
        _copy_one(source, target, sid, report, present)
        if progress is not None:
            progress(1)  # every session of the source counts, copied or not
    return report


def _in_creation_order(source: EventStore) -> list[UUID]:
    """Every session of ``source``, in its list order (so the copies list in the same order in the target,
    where each gets its position in the order it is appended), then those without a projection, by id."""
    from sessionflow.application.ports import Query

    ordered: list[UUID] = []
    page = source.query(Query(include_deleted=True, limit=1000))
    while page:
        ordered += (s.id for s in page)
        page = source.query(Query(include_deleted=True, limit=1000, after=page[-1].id)) if len(page) == 1000 else []
    listed = set(ordered)
    return ordered + sorted((sid for sid in source.session_ids() if sid not in listed), key=str)


def _copy_one(source: EventStore, target: EventStore, sid: UUID, report: MigrationReport, present: set[UUID]) -> None:
    from sessionflow.application.ports import Change

    if sid in present:
        report.already_present += 1
        return
    try:
        session, events = source.read_together(sid)
    except InvalidInput as error:  # data the library refuses today, stored by an older version
        report.skipped.append((sid, f"the source's data was refused: {one_line(error.message)}"))
        return
    if session is None or not events:
        report.differences.append(f"{sid}: no projection or no events in the source; not copied")
        return
    try:
        target.append(Change(session=session, events=tuple(events), expected_version=0))
    except (InvalidInput, StoreError) as error:
        reason = refusal_reason(error)
        if reason is None:
            raise
        report.skipped.append((sid, f"the target refused it: {reason}"))
        return
    report.sessions += 1
    report.events += len(events)


def _strip(events: list[Any]) -> list[Any]:
    return [e.evolve(position=None) for e in events]


def verify_copy(source: EventStore, target: EventStore, report: MigrationReport) -> MigrationReport:
    """Compare every session's history and projection in ``target`` with ``source``'s, and fold each target
    history (``verify``); each difference is added to ``report``. The sessions ``report.skipped`` lists are not
    expected in the target."""
    from sessionflow.application.manager import ManagerCore

    skipped = {sid for sid, _ in report.skipped}
    source_ids = set(source.session_ids())
    target_ids = set(target.session_ids())
    source_ids -= skipped
    for sid in sorted(source_ids ^ target_ids, key=str):
        report.differences.append(f"{sid}: only in the {'source' if sid in source_ids else 'target'}")
    for sid in sorted(source_ids & target_ids, key=str):
        session, events = source.read_together(sid)
        copied, copied_events = target.read_together(sid)
        if _strip(events) != _strip(copied_events):
            report.differences.append(f"{sid}: the histories differ")
        if session != copied:
            report.differences.append(f"{sid}: the projections differ")
    checker = ManagerCore(target, owns_store=False)
    try:
        report.differences.extend(f"{d.session_id}: {d.field} projected {d.projected!r}, replayed {d.replayed!r}"
                                  for d in checker.verify())
    finally:
        checker.close()
    return report


def migrate(source_url: str, target_url: str, *, resume: bool = False, out: Output | None = None) -> MigrationReport:
    """Copy ``source_url``'s sessions into ``target_url`` (with ``resume``: those it does not hold yet), verify,
    and return the report. ``out`` draws the copy's progress bar, out of the source's number of sessions (on a
    terminal)."""
    refuse_in_memory(source_url, "--from")
    refuse_in_memory(target_url, "--to")
    if source_url == target_url:
        raise InvalidInput("to", "the source and the target are the same store")
    report = MigrationReport(mask_url(source_url), mask_url(target_url))
    source = open_any_store(source_url)
    try:
        target = open_any_store(target_url)
        try:
            if out is not None and out.interactive:
                with out.progress("copying sessions", len(source.session_ids())) as advance:
                    copy_store(source, target, report, advance, resume=resume)
            else:
                copy_store(source, target, report, resume=resume)
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
    target: Annotated[str, typer.Option("--to", metavar="URL", help="The store to copy into (empty, unless --resume).",
                                        show_default=False)],
    resume: Annotated[bool, typer.Option(
        "--resume", help="The target may already hold sessions of the source (an earlier run stopped part-way): "
                         "copy only the missing ones, then verify all.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Copy every session (its whole history) from one store to another, verify the copy and report.

    URLs: sqlite:///file.db, postgresql+psycopg://..., redis://host:port/db. Run it while nothing writes to the
    source. Sessions the target refuses (e.g. PostgreSQL and a NUL character) are skipped and listed, the others
    copied; exits 6 when one was skipped, 9 when the verification finds a difference.
    """
    g = globals_of(ctx)
    register_lifecycles(g.lifecycles)
    out = Output(json_mode=json_output or g.json)
    with engine_logging(g.verbose):
        report = migrate(source, target, resume=resume, out=out)
    if out.json:
        out.document(report.to_dict())
    else:
        present = f"; {report.already_present} already in the target" if resume else ""
        out.print(f"copied {report.sessions} session{'s' if report.sessions != 1 else ''} "
                  f"({report.events} events) from {escape(report.source)} to {escape(report.target)}{present}")
        for sid, reason in report.skipped:
            out.print(f"skipped: {sid}: {escape(reason)}")
        for difference in report.differences:
            out.print(f"difference: {escape(difference)}")
        if report.verified:
            out.print("verified: the copy equals the source" if not report.skipped else
                      "verified: every session in the target equals the source's")
        else:
            out.print(f"NOT verified: {len(report.differences)} difference(s)")
        if report.skipped:
            out.print(f"NOT complete: {len(report.skipped)} session(s) skipped; change them in the source, then "
                      "run again with --resume")
    if not report.verified:
        raise typer.Exit(int(ExitCode.INCONSISTENT))
    if report.skipped:
        raise typer.Exit(int(ExitCode.INVALID_INPUT))

