"""Batches: many creations, or many events, committed in one transaction.

Each item is validated, decided by its session's lifecycle and versioned exactly as the single call would do
it (:meth:`~sessionflow.SessionManager.create`, :meth:`~sessionflow.SessionManager.send`); then the whole batch
is appended at once (:meth:`~sessionflow.application.ports.EventStore.append_many`). One refused item — bad
arguments, an illegal transition, a lost race, another session of the user in progress — refuses the batch:
:class:`~sessionflow.errors.BatchRejected` names the item (its index) and carries its own error, and nothing
of the batch was written. Items are applied in order, so a later item may build on an earlier one (two events
of one session: the second is decided on the state the first leads to).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, TypedDict
from uuid import UUID

from sessionflow.application import commands
from sessionflow.application import validation as valid
from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import Change
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.models import Session
from sessionflow.domain.values import parse_session_id
from sessionflow.errors import (
    ActiveSessionExists,
    BatchRejected,
    ConcurrencyConflict,
    InvalidInput,
    SessionflowError,
    SessionNotFound,
)

__all__ = ["MAX_BATCH", "CreateItem", "SendItem", "create_many", "send_many"]

#: The most items one batch takes.
MAX_BATCH: Final = 10_000

_CREATE_KEYS: Final = frozenset({"user_id", "workspace_id", "module_name", "file_paths", "metadata", "ttl",
                                 "lifecycle", "start"})


class CreateItem(TypedDict, total=False):
    """One session of :meth:`~sessionflow.SessionManager.create_many`: the keyword arguments of
    :meth:`~sessionflow.SessionManager.create` but ``performer_id`` (all optional)."""

    user_id: str | None
    workspace_id: str | None
    module_name: str | None
    file_paths: Iterable[str] | None
    metadata: Mapping[str, Any] | None
    ttl: timedelta | None
    lifecycle: LifecycleDefinition | str | None
    #: Created and started at once (see ``create(..., start=True)``).
    start: bool


class SendItem(NamedTuple):
    """One event of :meth:`~sessionflow.SessionManager.send_many`; a plain tuple ``(session_id, event)``,
    ``(session_id, event, args)`` or ``(session_id, event, args, expected_version)`` is read the same way."""

    session_id: UUID | str
    event: str
    args: Mapping[str, Any] | None = None
    expected_version: int | None = None


class _Send(NamedTuple):
    """A validated :class:`SendItem`."""

    session_id: UUID
    event: str
    args: dict[str, Any]
    payload: dict[str, Any]
    expected_version: int | None


def _items(items: Any) -> list[Any]:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidInput("items", "expected an iterable of items")
    batch = list(items)
    if len(batch) > MAX_BATCH:
        raise InvalidInput("items", f"at most {MAX_BATCH} items in one batch (got {len(batch)})")
    return batch


def create_many(pipeline: WritePipeline, registry: LifecycleRegistry, items: Any, performer_id: Any,
                default_ttl: timedelta) -> list[Session]:
    """Create a session per item in one transaction; see the module's docstring."""
    performer = valid.performer(performer_id)
    batch = _items(items)
    now = pipeline.now()
    changes: list[Change] = []
    for index, item in enumerate(batch):
        try:
            if not isinstance(item, Mapping):
                raise InvalidInput("items", f"item {index}: expected a mapping of create()'s arguments, got "
                                            f"{type(item).__name__}")
            unknown = sorted(str(key)[:40] for key in item if key not in _CREATE_KEYS)
            if unknown:
                raise InvalidInput("items", f"item {index}: {unknown[0]!r} is not an argument of create_many")
            definition = valid.resolve_lifecycle(registry, item.get("lifecycle"), pipeline.default_definition)
            arguments = valid.create_arguments(
                performer_id=performer, user_id=item.get("user_id"), workspace_id=item.get("workspace_id"),
                module_name=item.get("module_name"), file_paths=item.get("file_paths"),
                metadata=item.get("metadata"), ttl=item.get("ttl"), default_ttl=default_ttl)
            start = item.get("start", False)
            if not isinstance(start, bool):
                raise InvalidInput("start", f"item {index}: expected True or False, got {type(start).__name__}")
            change = commands.creation(pipeline, definition, arguments, now)
            changes.append(commands.started_creation(pipeline, change, now) if start else change)
        except SessionflowError as error:
            raise BatchRejected(index, error) from error
    if changes:
        try:
            pipeline.delivery.commit_many(changes)
        except BatchRejected as rejected:  # a refused start of a new session: it does not exist, name none
            refused = rejected.error
            if isinstance(refused, ActiveSessionExists) and changes[rejected.index].expected_version == 0:
                raise BatchRejected(rejected.index, ActiveSessionExists(
                    None, user_id=refused.user_id, active_session_id=refused.active_session_id)) from None
            raise
    return [change.session for change in changes]


def _send_item(item: Any) -> _Send:
    if isinstance(item, (str, bytes, Mapping)) or not isinstance(item, (tuple, list)):
        raise InvalidInput("items", f"expected (session_id, event[, args[, expected_version]]), got "
                                    f"{type(item).__name__}")
    if not 2 <= len(item) <= 4:
        raise InvalidInput("items", f"expected 2 to 4 values (session_id, event[, args[, expected_version]]), "
                                    f"got {len(item)}")
    sid = parse_session_id(item[0])
    args = item[2] if len(item) > 2 else None
    if args is not None and not isinstance(args, Mapping):
        raise InvalidInput("args", f"expected a mapping of the event's arguments, got {type(args).__name__}",
                           session_id=sid)
    expected = item[3] if len(item) > 3 else None
    valid.check_expected(expected)
    arguments, payload = valid.event_arguments(item[1], args)
    return _Send(sid, item[1], arguments, payload, expected)


def send_many(pipeline: WritePipeline, items: Any, performer_id: Any) -> list[Session]:
    """Send an event per item in one transaction; returns each item's session as its event left it."""
    performer = valid.performer(performer_id)
    sends: list[_Send] = []
    for index, item in enumerate(_items(items)):
        try:
            sends.append(_send_item(item))
        except SessionflowError as error:
            raise BatchRejected(index, error) from error
    if not sends:
        return []
    for attempt in range(2):
        fresh = attempt > 0 or not pipeline.caches_reads
        decided = _decide(pipeline, sends, performer, pipeline.now(), fresh)
        if decided is None:
            continue  # a cached copy was behind an expected version: read again
        changes, item_of = decided
        try:
            pipeline.delivery.commit_many(changes)
        except BatchRejected as rejected:
            if not fresh and isinstance(rejected.error, ConcurrencyConflict):
                continue  # decided on a cached copy that was behind: decide again on fresh reads
            # (an overdue session's expiry is refused with the item it came before)
            item = next(i for i in item_of[rejected.index:] if i >= 0)
            raise BatchRejected(item, rejected.error) from rejected.error
        return [change.session for change, item in zip(changes, item_of, strict=True) if item >= 0]
    raise AssertionError("unreachable")  # pragma: no cover


def _decide(pipeline: WritePipeline, sends: list[_Send], performer: str, now: datetime,
            fresh: bool) -> tuple[list[Change], list[int]] | None:
    """The changes of ``sends`` (an overdue session's expiry first, as a single write records it) and, per
    change, the index of its item (-1: an expiry); ``None`` when a cached read may be stale (it was behind an
    expected version, or an item was refused on it)."""
    current: dict[UUID, Session] = {}
    changes: list[Change] = []
    item_of: list[int] = []
    for index, send in enumerate(sends):
        try:
            session = current.get(send.session_id)
            if session is None:
                session = pipeline.store.get(send.session_id, fresh=fresh)
                if session is None or session.deleted_at is not None:
                    raise SessionNotFound(send.session_id)
                pipeline.definition(session)
                if session.is_overdue(now):
                    expiry = pipeline.expiry_change(session, now)
                    if expiry is not None:
                        changes.append(expiry)
                        item_of.append(-1)
                        session = expiry.session
            if send.expected_version is not None and session.version != send.expected_version:
                if not fresh:
                    return None
                raise ConcurrencyConflict(session.id, expected_version=send.expected_version,
                                          actual_version=session.version)
            pipeline.check_owner(session, performer)
            event = pipeline.transition(session, send.event, performer, now, dict(send.payload), send.args)
        except SessionflowError as error:
            if not fresh:
                return None  # refused on a cached copy, which may be behind another process's write
            raise BatchRejected(index, error) from error
        change = pipeline.transition_change(session, event, now)
        changes.append(change)
        item_of.append(index)
        current[session.id] = change.session
    return changes, item_of
