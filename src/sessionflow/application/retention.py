"""Retention: purge the sessions that closed long ago, optionally archiving their histories first.

A session is *closed* once it reached a final state of its lifecycle (``completed``, ``failed``, ``expired``, or
a custom lifecycle's final states) or was deleted; nothing can change it any more except a ``deleted`` event.
:func:`purge_closed` removes every closed session whose last change is before a cutoff — its events and its
projection row — in batches, each batch in one transaction of the store:

1. the store's sessions created before the cutoff are walked in list order (keyset pages of
   :meth:`~sessionflow.application.ports.EventStore.query`), keeping the closed ones last changed before it;
2. with an :class:`Archive`, each one's projection and history are read together (one snapshot) and checked to
   agree, and
3. the histories are written and made durable (files fsynced and renamed into place,
   folders fsynced) — only then
4. the store removes the batch in one transaction (its capability
   :class:`~sessionflow.application.ports.PurgesSessions`), each session only if it is still at the version read
   (in 1, or in 2 with an archive). A session changed meanwhile (a ``deleted`` event appended, ...) is skipped and
   stays whole; a later run purges it.

So a crash at any moment leaves every session either whole in the store (perhaps also archived already: a
re-run writes its file again, whole, under the same name) or archived and gone, never partly removed.

**Feed positions are never reused, and the newest position never goes back.** SQLite numbers a new event
``max(position) + 1``: removing the events that hold the highest positions would hand those numbers out again,
and a feed consumer that had read them would skip the new events. So every store keeps the session holding the
feed's newest event (checked inside the removing transaction); it is purged by a later run, once a newer event
exists. (PostgreSQL's sequence and Redis's counter never reuse a number anyway; the rule also keeps
:meth:`~sessionflow.application.ports.EventStore.last_position` from moving back on them.) Feed consumers'
stored positions are not touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from sessionflow.application.ports import EventStore, PurgesSessions, Query
from sessionflow.application.validation import check_int
from sessionflow.domain.models import Session, SessionEvent
from sessionflow.errors import InvalidInput, OutcomeUnknown, StoreError

__all__ = ["MAX_BATCH", "Archive", "Progress", "PurgeResult", "archive_root", "is_closed_before",
           "purge_arguments", "purge_closed"]

#: The largest ``batch_size`` (sessions per transaction).
MAX_BATCH = 10_000
#: Sessions read per page while looking for closed ones.
_PAGE = 500

Progress = Callable[[int], object]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What :func:`purge_closed` did.

    ``sessions`` and ``events``: removed from the store. ``archive_files``: archive files written (a session
    skipped after it was archived keeps its file; a later run writes it again). ``skipped``: closed sessions
    last changed before the cutoff that were left in place — changed meanwhile, holding the feed's newest event,
    or (with an archive) not archivable under their user id.
    """

    sessions: int = 0
    events: int = 0
    archive_files: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"sessions": self.sessions, "events": self.events, "archive_files": self.archive_files,
                "skipped": self.skipped}


class Archive(Protocol):
    """Where purged histories go before they are removed (``sessionflow.adapters.archive.JsonlArchive``)."""

    def write(self, histories: Sequence[Sequence[SessionEvent]]) -> list[UUID]:
        """Write each whole history durably (on disk, not just in a buffer, once this returns) and return the ids
        of the sessions written; a session left out is not purged."""
        ...


def _aware(value: Any, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "must be timezone-aware")
    return value.astimezone(UTC)


def archive_root(value: Any) -> Path | None:
    """``None``, or the archive folder ``value`` names (it must be a folder if it exists).

    A path the operating system cannot take — with a NUL character, not encodable, a name too long, given as
    bytes — or one that cannot be looked at is :class:`InvalidInput` too, like any other bad argument.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | os.PathLike):
        raise InvalidInput("archive", f"expected a folder path, got {type(value).__name__}")
    try:
        name = os.fspath(value)
    except TypeError:
        raise InvalidInput("archive", "expected a folder path") from None
    if not isinstance(name, str):
        raise InvalidInput("archive", "expected a folder path as text, not bytes")
    if not name:
        raise InvalidInput("archive", "must not be empty")
    if "\x00" in name:
        raise InvalidInput("archive", "contains a NUL character")
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        raise InvalidInput("archive", "not a path the file system can encode (lone surrogate)") from None
    root = Path(name)
    try:
        not_a_folder = root.exists() and not root.is_dir()
    except (OSError, ValueError) as error:  # e.g. a name too long, or text the file system cannot encode
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not a usable path"
        raise InvalidInput("archive", f"cannot be used as a folder: {reason}") from None
    if not_a_folder:
        raise InvalidInput("archive", f"{name!r} exists and is not a folder")
    return root


def purge_arguments(closed_before: Any, archive: Any, batch_size: Any,
                    progress: Any) -> tuple[datetime, Path | None, int]:
    """The checked arguments of a purge (:class:`InvalidInput` for any bad one, before anything is done)."""
    cutoff = _aware(closed_before, "closed_before")
    root = None if _is_archive(archive) else archive_root(archive)
    size = check_int(batch_size, "batch_size", 1, MAX_BATCH)
    if progress is not None and not callable(progress):
        raise InvalidInput("progress", "expected a callable or None")
    return cutoff, root, size


def _is_archive(value: Any) -> bool:
    return value is not None and callable(getattr(value, "write", None)) and not isinstance(value, str | os.PathLike)


def is_closed_before(session: Session, cutoff: datetime) -> bool:
    """Closed (final state or deleted) and last changed before ``cutoff``."""
    return (session.deleted_at is not None or session.is_terminal) and session.updated_at < cutoff


def _candidates(store: EventStore, cutoff: datetime, batch_size: int) -> Iterator[list[Session]]:
    """The closed sessions last changed before ``cutoff``, ``batch_size`` at a time, walking the sessions created
    before it in list order. Each page is read after the last session of the page before it (its anchor)
    before any batch of that page is yielded, and so purged: the anchor always exists when it is read after."""
    batch: list[Session] = []
    page = store.query(Query(include_deleted=True, created_before=cutoff, limit=_PAGE))
    while page:
        following = (store.query(Query(include_deleted=True, created_before=cutoff, after=page[-1].id, limit=_PAGE))
                     if len(page) == _PAGE else [])
        for session in page:
            if is_closed_before(session, cutoff):
                batch.append(session)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        page = following
    if batch:
        yield batch


def purge_closed(store: EventStore, *, closed_before: datetime, archive: Archive | None = None,
                 batch_size: int = 500, progress: Progress | None = None) -> PurgeResult:
    """Remove every closed session last changed before ``closed_before`` (see the module's docstring), archiving
    each history first when ``archive`` is given; ``progress(n)`` after each batch with the sessions it removed.

    The arguments are expected checked (:func:`purge_arguments`). Raises :class:`StoreError` for a store that
    cannot purge, and :class:`~sessionflow.errors.OutcomeUnknown` (its ``applied``: the sessions the earlier
    batches removed) when a batch's outcome could not be established.
    """
    if not isinstance(store, PurgesSessions):
        raise StoreError(f"{type(store).__name__} cannot purge sessions")
    sessions = events = files = skipped = 0
    for batch in _candidates(store, closed_before, batch_size):
        expected: dict[UUID, int] = {}
        histories: list[list[SessionEvent]] = []
        for candidate in batch:
            if archive is None:  # nothing to write: the removal's compare-and-set on the version is the check
                expected[candidate.id] = candidate.version
                continue
            projection, history = store.read_together(candidate.id)
            if (projection is None or not history or len(history) != projection.version
                    or history[-1].version != projection.version or not is_closed_before(projection, closed_before)):
                skipped += 1
                continue
            expected[projection.id] = projection.version
            histories.append(history)
        if archive is not None and histories:
            written = set(archive.write(histories))
            files += len(written)
            skipped += sum(1 for sid in expected if sid not in written)
            expected = {sid: version for sid, version in expected.items() if sid in written}
        if not expected:
            continue
        try:
            removed = store.purge_sessions(expected)
        except OutcomeUnknown as unknown:  # say what the earlier batches removed
            raise unknown.with_applied(sessions) from unknown
        skipped += len(expected) - len(removed)
        sessions += len(removed)
        events += sum(expected[sid] for sid in removed)  # versions run 1..n: a session's version is its event count
        if progress is not None and removed:
            progress(len(removed))
    return PurgeResult(sessions=sessions, events=events, archive_files=files, skipped=skipped)
