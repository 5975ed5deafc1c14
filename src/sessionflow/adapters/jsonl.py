"""The JSONL audit trail: one append-only file of JSON lines per session.

Layout under a root folder::

    <root>/users/<user_id>/sessions/<session_id>.jsonl   a session with a user
    <root>/no-user/sessions/<session_id>.jsonl           a session without one

Each line is one committed event, a JSON object with the keys ``record_id``, ``session_id``, ``version``,
``user_id``, ``performer_id``, ``source`` (always ``"sessionflow"``), ``event``, ``from``, ``to``,
``timestamp`` (ISO 8601 UTC with milliseconds and ``Z``) and ``payload``, in that order, then
``trace_context`` (``{"traceparent": ..., "tracestate": ... | null}``) only for an event that recorded one; the
payload's keys are sorted, so a line is a pure function of its event. A line without ``trace_context`` (one
written outside any span, or by a release before the field existed) reads back with ``trace_context`` ``None``.

:class:`JsonlAuditTrail` is a subscriber that appends each event as the manager commits it;
:func:`export` writes the same files from the stored histories (idempotently: a second run gives
byte-identical files). A line is written with one ``write`` on a file opened with ``O_APPEND``, so a process
that dies mid-way leaves whole lines only; a write that fails or stops short (a full disk) is cut off again
(the file truncated back to its length before it), so the next line starts at a line boundary. ``export``
writes a temporary file and renames it into place; a file it cannot write raises
:class:`~sessionflow.errors.ArchiveError` (the OS error's ``strerror``, chained), and a root that cannot be a
folder (empty, or under a file) :class:`~sessionflow.errors.InvalidInput` before anything is written.

A user id or session id that could not safely be one path component (empty, ``.``/``..``, a path separator,
NUL or a control character, or longer than 255 bytes) is refused with
:class:`~sessionflow.errors.InvalidInput`: nothing is written outside the root.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from sessionflow.domain.models import EventType, SessionEvent
from sessionflow.domain.values import format_timestamp, thaw_json
from sessionflow.errors import ArchiveError, InvalidInput

if TYPE_CHECKING:
    from sessionflow.application.manager import ManagerCore
    from sessionflow.application.ports import EventStore

__all__ = ["NO_USER_DIR", "SOURCE", "ExportResult", "JsonlAuditTrail", "audit_line", "audit_path", "audit_record",
           "check_root", "export", "replace_file"]

logger = logging.getLogger("sessionflow.audit")

#: The ``source`` of every line.
SOURCE: Final = "sessionflow"
#: The folder (under the root) for sessions without a user.
NO_USER_DIR: Final = "no-user"
_MAX_COMPONENT_BYTES: Final = 255
_MAX_CACHED_USERS: Final = 100_000
_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def _component(value: str, field_name: str) -> str:
    """``value`` if it is safe as one path component, else :class:`InvalidInput`."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(field_name, "must be a non-empty string to name a folder or file")
    if value in (".", ".."):
        raise InvalidInput(field_name, f"{value!r} would escape the audit root")
    if "/" in value or "\\" in value or (os.altsep is not None and os.altsep in value):
        raise InvalidInput(field_name, "contains a path separator")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(field_name, "contains NUL or a control character")
    try:
        encoded = os.fsencode(value)
    except UnicodeError:
        raise InvalidInput(field_name, "cannot be encoded as a file name") from None
    if len(encoded) > _MAX_COMPONENT_BYTES:
        raise InvalidInput(field_name, f"longer than {_MAX_COMPONENT_BYTES} bytes as a file name")
    return value


def audit_path(root: str | os.PathLike[str], session_id: UUID | str, user_id: str | None) -> Path:
    """Where the lines of ``session_id`` go. Raises :class:`InvalidInput` for an unsafe id."""
    sid = _component(str(session_id), "session_id")
    base = Path(root)
    folder = base / NO_USER_DIR if user_id is None else base / "users" / _component(user_id, "user_id")
    return folder / "sessions" / f"{sid}.jsonl"


def _sorted_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted_json(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_json(item) for item in value]
    return value


def audit_record(event: SessionEvent, user_id: str | None) -> dict[str, Any]:
    """The JSON object of one line, as a dict."""
    record: dict[str, Any] = {
        "record_id": str(event.record_id),
        "session_id": str(event.session_id),
        "version": event.version,
        "user_id": user_id,
        "performer_id": event.performer_id,
        "source": SOURCE,
        "event": str(event.event),
        "from": None if event.source_state is None else str(event.source_state),
        "to": str(event.target_state),
        "timestamp": format_timestamp(event.timestamp),
        "payload": _sorted_json(thaw_json(event.payload)),
    }
    trace = event.trace_context
    if trace is not None:
        record["trace_context"] = {"traceparent": trace.traceparent, "tracestate": trace.tracestate}
    return record


def audit_line(event: SessionEvent, user_id: str | None) -> bytes:
    """One line (UTF-8, ending in a newline) for ``event`` of a session of ``user_id``."""
    text = json.dumps(audit_record(event, user_id), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)
    return (text + "\n").encode("utf-8")


def _cut_partial_line(path: Path) -> None:
    """Truncate ``path`` after its last newline (a line left torn by an earlier failure)."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            newline = os.pread(fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end != size:
            os.ftruncate(fd, end)
    finally:
        os.close(fd)


def _append_line(fd: int, data: bytes) -> None:
    """Append ``data`` (one whole line) with one ``write``; on a short or failed write (a full disk) truncate
    the file back to its length before the write and raise :class:`OSError`, so no partial line stays."""
    before = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        if written != len(data):  # a short write on a regular file: the disk or a quota is full
            raise OSError(errno.ENOSPC, f"short write to the audit trail: {written} of {len(data)} bytes")
    except BaseException:
        os.ftruncate(fd, before)  # an OSError from here leaves the file torn: the caller repairs it next time
        raise


class JsonlAuditTrail:
    """A subscriber that appends each committed event to its session's JSONL file.

    Args:
        root: the audit folder (created when needed).
        store: where to look up a session's user for events other than ``created`` (the manager's
            store; its read cache is used, so this is cheap). :meth:`attach` passes it for you.
        fsync: ``fsync`` each line before returning (durable against power loss, slower).

    Events of one session are appended in the order this process commits them. A line that cannot be written
    (a full disk) raises :class:`OSError` and leaves nothing of itself in the file, so the lines after it start
    at a line boundary (``export`` writes the missing line again). Use :meth:`attach`::

        trail = JsonlAuditTrail.attach(manager, "audit/")
        ...
        trail.detach()
    """

    def __init__(self, root: str | os.PathLike[str], *, store: EventStore | None = None,
                 fsync: bool = False) -> None:
        self.root = Path(root)
        self.fsync = bool(fsync)
        self._store = store
        self._users: dict[UUID, str | None] = {}
        self._folders: set[Path] = set()
        self._torn: set[Path] = set()  # files a failed write may have left ending in a partial line
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def attach(cls, manager: ManagerCore, root: str | os.PathLike[str], *,
               fsync: bool = False) -> JsonlAuditTrail:
        """Subscribe a trail writing under ``root`` to ``manager``'s committed events."""
        trail = cls(root, store=manager.store, fsync=fsync)
        trail._unsubscribe = manager.subscribe(trail)
        return trail

    def detach(self) -> None:
        """Stop receiving events (when attached with :meth:`attach`)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _user_of(self, event: SessionEvent) -> str | None:
        if event.event is EventType.CREATED:
            user = event.payload.get("user_id")
            return None if user is None else str(user)
        with self._lock:
            if event.session_id in self._users:
                return self._users[event.session_id]
        if self._store is None:
            raise InvalidInput("store", "the trail needs the manager's store to find a session's user "
                               "(use JsonlAuditTrail.attach)", session_id=event.session_id)
        session = self._store.get(event.session_id, fresh=False)
        if session is not None:
            return session.user_id
        history = self._store.history(event.session_id)
        user = history[0].payload.get("user_id") if history else None
        return None if user is None else str(user)

    def __call__(self, event: SessionEvent) -> None:
        user = self._user_of(event)
        path = audit_path(self.root, event.session_id, user)
        data = audit_line(event, user)
        folder = path.parent
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        with self._lock:
            torn = path in self._torn
        if torn:
            _cut_partial_line(path)
            with self._lock:
                self._torn.discard(path)
        fd = os.open(path, _FLAGS, 0o644)
        try:
            try:
                _append_line(fd, data)
            except BaseException:
                with self._lock:  # the truncation itself may have failed: check the file's end next time
                    self._torn.add(path)
                raise
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:  # a session's user never changes; forget it once the session is deleted
            if event.event is EventType.DELETED:
                self._users.pop(event.session_id, None)
            else:
                if len(self._users) >= _MAX_CACHED_USERS:
                    self._users.clear()
                self._users[event.session_id] = user


@dataclass
class ExportResult:
    """What :func:`export` did."""

    sessions: int = 0
    events: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    skipped: list[tuple[UUID, str]] = field(default_factory=list)


def replace_file(path: Path, data: bytes, *, fsync: bool) -> bool:
    """Write ``data`` to ``path`` atomically; False (and nothing written) when it already holds it.

    Raises :class:`~sessionflow.errors.ArchiveError` (chained to the :class:`OSError`) when the file cannot be
    written (a full disk, no permission...): ``path`` is then as it was, and no temporary file is left.
    """
    try:
        return _replace_file(path, data, fsync=fsync)
    except OSError as error:
        raise ArchiveError(str(path), error.strerror or str(error)) from error


def _replace_file(path: Path, data: bytes, *, fsync: bool) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return True


def check_root(root: str | os.PathLike[str], field_name: str = "root") -> Path:
    """``root`` as a folder path to write under, else :class:`InvalidInput` naming ``field_name``: empty, or an
    existing path that is not a folder, or under a file (its nearest existing parent is not a folder)."""
    if isinstance(root, bool) or not isinstance(root, str | os.PathLike):
        raise InvalidInput(field_name, f"expected a folder path, got {type(root).__name__}")
    if not os.fspath(root):
        raise InvalidInput(field_name, "must not be empty")
    path = Path(root)
    current = path
    while True:
        try:
            if current.exists() or current.is_symlink():
                break
        except OSError:  # e.g. a name too long: found when writing
            return path
        if current.parent == current:
            return path
        current = current.parent
    if not current.is_dir():
        where = "exists" if current == path else f"is under {str(current)!r}, which exists"
        raise InvalidInput(field_name, f"{str(path)!r} {where} and is not a folder")
    return path


def export(manager: ManagerCore, root: str | os.PathLike[str], *, skip_invalid: bool = False,
           fsync: bool = False, progress: Callable[[int], object] | None = None,
           batch_size: int = 1000) -> ExportResult:
    """Write every session's audit file under ``root`` from its stored history (deleted sessions too).

    Idempotent: each file is rebuilt whole and replaced atomically (temporary file + ``os.replace``), and a
    file that already has the right content is left untouched, so running it again gives identical files.
    A session whose user id cannot be a folder name raises :class:`InvalidInput`, or is listed in
    ``ExportResult.skipped`` when ``skip_invalid`` is true. ``progress(n)`` is called after each session
    with the number of sessions done so far. Run it while no writer appends to the same root, or run it
    again afterwards.

    ``root`` empty, or not a folder (an existing file, or a path under one), raises :class:`InvalidInput` (field
    ``root``) before anything is written; a file that cannot be written (a full disk) raises
    :class:`~sessionflow.errors.ArchiveError`, the files written before it staying whole.
    """
    root = check_root(root, "root")
    result = ExportResult()
    for history in manager.store.histories(batch_size):
        if not history:  # pragma: no cover - stores yield non-empty histories
            continue
        first = history[0]
        raw_user = first.payload.get("user_id") if first.event is EventType.CREATED else None
        user = None if raw_user is None else str(raw_user)
        try:
            path = audit_path(root, first.session_id, user)
        except InvalidInput as error:
            if not skip_invalid:
                raise InvalidInput(error.field, error.problem, session_id=first.session_id) from None
            result.skipped.append((first.session_id, error.message))
            continue
        data = b"".join(audit_line(event, user) for event in history)
        if replace_file(path, data, fsync=fsync):
            result.files_written += 1
        else:
            result.files_unchanged += 1
        result.sessions += 1
        result.events += len(history)
        if progress is not None:
            progress(result.sessions)
    return result
