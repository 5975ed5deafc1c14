"""The purge archive: each purged session's whole history as one JSONL file, in the format of ``export``.

Layout and lines are those of :mod:`sessionflow.adapters.jsonl` (``<root>/users/<user_id>/sessions/<id>.jsonl``,
``<root>/no-user/sessions/<id>.jsonl``; one event per line). :class:`JsonlArchive` is the
:class:`~sessionflow.application.retention.Archive` that :meth:`sessionflow.SessionManager.purge` writes before
it removes a batch, durably: each file is written to a temporary file in its folder, fsynced, renamed into place,
and every folder that got a new entry is fsynced, all before the batch is removed from the store.

A file or folder that cannot be written (a full disk, no permission) raises
:class:`~sessionflow.errors.ArchiveError` (the OS error's ``strerror``, chained to the :class:`OSError`), before
the batch is removed: the store keeps it. A root that cannot be a folder (a path under a file, or a file) is
refused with :class:`~sessionflow.errors.InvalidInput` when the archive is made.

A file is named by its session, so writing a session again (a run killed after archiving a batch but before
removing it, then run again) replaces the file whole: the archive never holds a session twice.
:func:`read_archive` reads the histories back (a temporary file left by a killed run is ignored), and
:func:`restore_archive` appends them to a store again.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from sessionflow.adapters.jsonl import audit_line, audit_path, replace_file
from sessionflow.application.ports import Change, EventStore
from sessionflow.domain.models import EventType, SessionEvent
from sessionflow.domain.replay import replay
from sessionflow.errors import ArchiveError, InvalidInput

__all__ = ["JsonlArchive", "read_archive", "read_archive_file", "restore_archive"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: The errors of a root that cannot be a folder (a file in the way): a wrong argument, not a failed write.
_NOT_A_FOLDER = frozenset({errno.ENOTDIR, errno.EEXIST})


def _fsync_folder(folder: Path) -> None:
    """Make ``folder``'s entries durable (a rename or a new file in it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | _O_CLOEXEC)
    except OSError:  # pragma: no cover - a platform whose folders cannot be opened (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _user_of(history: Sequence[SessionEvent]) -> str | None:
    first = history[0]
    user = first.payload.get("user_id") if first.event is EventType.CREATED else None
    return None if user is None else str(user)


class JsonlArchive:
    """Writes histories under ``root`` (created if missing), durably; see the module's docstring."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            self._make_folder(self.root)
        except OSError as error:
            if error.errno in _NOT_A_FOLDER:
                raise InvalidInput("archive", f"cannot create the folder {str(self.root)!r}: {error.strerror}"
                                   ) from None
            raise ArchiveError(str(self.root), error.strerror or str(error)) from error
        self._folders: set[Path] = {self.root}

    @staticmethod
    def _make_folder(folder: Path) -> None:
        """Create ``folder`` and its missing parents, fsyncing each parent that got a new entry."""
        missing: list[Path] = []
        current = folder
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            _fsync_folder(path.parent)

    def write(self, histories: Sequence[Sequence[SessionEvent]]) -> list[UUID]:
        """Write each history's file; return the sessions written (not one whose user id cannot be a folder
        name). Every file and folder entry is on disk when this returns. Raises
        :class:`~sessionflow.errors.ArchiveError` when a file or folder cannot be written (a full disk)."""
        try:
            return self._write(histories)
        except OSError as error:  # a folder made or fsynced (the files' own errors are typed by replace_file)
            where = error.filename if isinstance(error.filename, str) else str(self.root)
            raise ArchiveError(where, error.strerror or str(error)) from error

    def _write(self, histories: Sequence[Sequence[SessionEvent]]) -> list[UUID]:
        written: list[UUID] = []
        touched: set[Path] = set()
        for history in histories:
            if not history:
                continue
            user = _user_of(history)
            try:
                path = audit_path(self.root, history[0].session_id, user)
            except InvalidInput:
                continue
            folder = path.parent
            if folder not in self._folders:
                self._make_folder(folder)
                self._folders.add(folder)
            replace_file(path, b"".join(audit_line(event, user) for event in history), fsync=True)
            touched.add(folder)
            written.append(history[0].session_id)
        for folder in touched:
            _fsync_folder(folder)
        return written

    def __repr__(self) -> str:
        return f"JsonlArchive({str(self.root)!r})"


def _event(record: dict[str, Any]) -> SessionEvent:
    """The event of one line; a line without ``trace_context`` (written outside any span, or by a release before
    the field) has none. A malformed line raises ``ValueError`` or ``KeyError`` (:func:`read_archive_file` makes
    it an :class:`~sessionflow.errors.InvalidInput`)."""
    return SessionEvent(
        record_id=UUID(record["record_id"]), session_id=UUID(record["session_id"]), version=record["version"],
        event=record["event"], source_state=record["from"], target_state=record["to"],
        performer_id=record["performer_id"], timestamp=record["timestamp"], payload=record["payload"],
        trace_context=record.get("trace_context"))


def _problem(error: Exception) -> str:
    """What is wrong with a line, in one line (a validation error: the first field and its message)."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"[:300]
    if isinstance(error, KeyError):
        return f"no {error.args[0]!r}"[:300]
    return (str(error) or type(error).__name__)[:300]


def read_archive_file(path: str | os.PathLike[str]) -> list[SessionEvent]:
    """The history one archive (or ``export``) file holds, oldest event first.

    A line that is not an event — malformed JSON, a key missing, a value out of bounds (a ``trace_context``
    whose ``traceparent`` is not W3C's, a ``tracestate`` too long) — raises
    :class:`~sessionflow.errors.InvalidInput` (field ``archive``) naming the file and the line."""
    events: list[SessionEvent] = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                events.append(_event(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise InvalidInput("archive", f"{os.fspath(path)}, line {number}: {_problem(error)}") from None
    return events


def read_archive(root: str | os.PathLike[str]) -> Iterator[list[SessionEvent]]:
    """Every history under ``root`` (an archive folder, or an ``export``), one list per session, in file order."""
    for path in sorted(Path(root).rglob("*.jsonl")):
        if not path.name.startswith(".") and path.is_file():
            yield read_archive_file(path)


def restore_archive(store: EventStore, root: str | os.PathLike[str]) -> int:
    """Append every archived history under ``root`` to ``store`` again (new feed positions), except the sessions
    the store already has; returns how many were restored."""
    restored = 0
    for history in read_archive(root):
        if not history or store.history(history[0].session_id):
            continue
        store.append(Change(session=replay(history), events=tuple(history), expected_version=0))
        restored += 1
    return restored
