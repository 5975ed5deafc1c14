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

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, TypedDict
from uuid import UUID

from sessionflow.application import commands
from sessionflow.application import validation as valid
from sessionflow.application.idempotency import IdempotencyKey, KeyRequest
from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import Change
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.models import Session
from sessionflow.domain.values import parse_session_id
from sessionflow.errors import (
    ActiveSessionExists,
    BatchRejected,
    ConcurrencyConflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
    OutcomeUnknown,
    SessionflowError,
    SessionNotFound,
)

__all__ = ["MAX_BATCH", "CreateItem", "SendItem", "create_many", "send_many"]

#: The most items one batch takes.
MAX_BATCH: Final = 10_000

_CREATE_KEYS: Final = frozenset({"user_id", "workspace_id", "module_name", "file_paths", "metadata", "ttl",
                                 "lifecycle", "start", "idempotency_key"})


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
    #: The item's idempotency key (see ``create(..., idempotency_key=...)``).
    idempotency_key: str | IdempotencyKey | None


class SendItem(NamedTuple):
    """One event of :meth:`~sessionflow.SessionManager.send_many`; a plain tuple ``(session_id, event)``,
    ``(session_id, event, args)``, ``(session_id, event, args, expected_version)`` or ``(session_id, event, args,
    expected_version, idempotency_key)`` is read the same way."""

    session_id: UUID | str
    event: str
    args: Mapping[str, Any] | None = None
    expected_version: int | None = None
    idempotency_key: str | IdempotencyKey | None = None


class _Send(NamedTuple):
    """A validated :class:`SendItem`."""

    session_id: UUID
    event: str
    args: dict[str, Any]
    payload: dict[str, Any]
    expected_version: int | None
    key: KeyRequest | None


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
    requests: list[KeyRequest | None] = []
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
            requests.append(commands.create_request(item.get("idempotency_key"), definition, arguments, start))
            change = commands.creation(pipeline, definition, arguments, now)
            changes.append(commands.started_creation(pipeline, change, now) if start else change)
        except SessionflowError as error:
            raise BatchRejected(index, error) from error
    if not changes:
        return []
    if not any(requests):
        return _commit_creations(pipeline, changes)
    return _keyed(pipeline, requests, now, lambda pending: _commit_creations(
        pipeline, [_keep(pipeline, changes[index], requests[index], now) for index in pending]))


def _commit_creations(pipeline: WritePipeline, changes: list[Change]) -> list[Session]:
    try:
        pipeline.delivery.commit_many(changes)
    except BatchRejected as rejected:  # a refused start of a new session: it does not exist, name none
        refused = rejected.error
        if isinstance(refused, ActiveSessionExists) and changes[rejected.index].expected_version == 0:
            raise BatchRejected(rejected.index, ActiveSessionExists(
                None, user_id=refused.user_id, active_session_id=refused.active_session_id)) from None
        raise
    return [change.session for change in changes]


# ---------------------------------------------------------------------- items with idempotency keys


@contextmanager
def _holding(pipeline: WritePipeline, requests: list[KeyRequest | None]) -> Iterator[None]:
    """The keys of the items in flight (each once in the batch) while the block runs."""
    guard = pipeline.keys
    indexed = [(index, request) for index, request in enumerate(requests) if request is not None]
    if guard is None:
        raise BatchRejected(indexed[0][0], InvalidInput(
            "idempotency_key", f"{type(pipeline.store).__name__} does not keep idempotency keys"))
    seen: set[tuple[str, str]] = set()
    for index, request in indexed:
        if (request.scope, request.key) in seen:
            raise BatchRejected(index, InvalidInput("idempotency_key", f"item {index}: its key is already the key "
                                                                       "of an earlier item of the batch"))
        seen.add((request.scope, request.key))
    try:
        with guard.holding([request for _, request in indexed]):
            yield
    except BatchRejected as rejected:
        if isinstance(rejected.error, IdempotencyKeyInFlight) and rejected.index < len(indexed):
            raise BatchRejected(indexed[rejected.index][0], rejected.error) from None
        raise
    except IdempotencyKeyInFlight as error:
        raise BatchRejected(indexed[0][0], error) from None


def _answers(pipeline: WritePipeline, requests: list[KeyRequest | None], now: datetime,
             pending: list[int]) -> dict[int, Session]:
    """The sessions answering the ``pending`` items whose key is stored for the same request, by item index. A key
    stored for another request refuses the batch (``BatchRejected`` naming its item); a failed lookup raises its
    own error."""
    guard = pipeline.keys
    assert guard is not None  # checked by _holding
    answers: dict[int, Session] = {}
    for index in pending:
        request = requests[index]
        if request is not None:
            try:
                answer = guard.answer(request, now)
            except IdempotencyKeyReused as error:
                raise BatchRejected(index, error) from error
            if answer is not None:
                answers[index] = answer
    return answers


def _keyed(pipeline: WritePipeline, requests: list[KeyRequest | None], now: datetime,
           write: Callable[[list[int]], list[Session]]) -> list[Session]:
    """The sessions of a batch whose items have keys: ``write(indexes)`` writes the items at ``indexes`` (each
    with its key) in one transaction and returns their sessions. Nothing is looked up first; when the write
    fails, the items whose key is stored for their request are answered and the others written again, until one
    write succeeds or a failure answers no further item (its error, the refused item named by its index in the
    whole batch, is raised). After an unknown outcome only a batch whose every item is answered returns: its
    items without a key may have been applied, so they are not written again."""
    answers: dict[int, Session] = {}
    pending = list(range(len(requests)))
    with _holding(pipeline, requests):
        while pending:
            try:
                written = write(pending)
            except SessionflowError as error:
                try:
                    found = _answers(pipeline, requests, now, pending)
                except BatchRejected:
                    raise
                except SessionflowError:
                    found = {}
                # An unknown outcome may have applied the whole batch: the items it answers are, and so may be
                # those without a key, which must not be written again. Only a refusal wrote nothing.
                unknown = isinstance(error, OutcomeUnknown) and len(found) < len(pending)
                if not found or unknown:
                    mapped = _mapped(error, pending)
                    if mapped is error:
                        raise
                    raise mapped from error
                answers.update(found)
                pending = [index for index in pending if index not in found]
                continue
            answers.update(zip(pending, written, strict=True))
            break
    return [answers[index] for index in range(len(requests))]


def _keep(pipeline: WritePipeline, change: Change, request: KeyRequest | None, now: datetime) -> Change:
    """``change`` with its item's key record, when it has one."""
    guard = pipeline.keys
    return change if request is None or guard is None else replace(change, idempotency=guard.record(request, now))


def _mapped(error: SessionflowError, pending: list[int]) -> SessionflowError:
    """``error`` of the batch of the ``pending`` items, a refused item named by its index in the whole batch."""
    if isinstance(error, BatchRejected) and error.index < len(pending):
        return BatchRejected(pending[error.index], error.error)
    return error


def _send_item(item: Any, performer: str) -> _Send:
    if isinstance(item, (str, bytes, Mapping)) or not isinstance(item, (tuple, list)):
        raise InvalidInput("items", f"expected (session_id, event[, args[, expected_version[, idempotency_key]]]), "
                                    f"got {type(item).__name__}")
    if not 2 <= len(item) <= 5:
        raise InvalidInput("items", f"expected 2 to 5 values (session_id, event[, args[, expected_version[, "
                                    f"idempotency_key]]]), got {len(item)}")
    sid = parse_session_id(item[0])
    args = item[2] if len(item) > 2 else None
    if args is not None and not isinstance(args, Mapping):
        raise InvalidInput("args", f"expected a mapping of the event's arguments, got {type(args).__name__}",
                           session_id=sid)
    expected = item[3] if len(item) > 3 else None
    valid.check_expected(expected)
    arguments, payload = valid.event_arguments(item[1], args)
    key = item[4] if len(item) > 4 else None
    request = commands.event_request(key, performer, item[1], sid, payload, arguments, expected)
    return _Send(sid, item[1], arguments, payload, expected, request)


def send_many(pipeline: WritePipeline, items: Any, performer_id: Any) -> list[Session]:
    """Send an event per item in one transaction; returns each item's session as its event left it."""
    performer = valid.performer(performer_id)
    sends: list[_Send] = []
    for index, item in enumerate(_items(items)):
        try:
            sends.append(_send_item(item, performer))
        except SessionflowError as error:
            raise BatchRejected(index, error) from error
    if not sends:
        return []
    requests = [send.key for send in sends]
    if not any(requests):
        return _send_all(pipeline, sends, performer, None)
    now = pipeline.now()
    return _keyed(pipeline, requests, now,
                  lambda pending: _send_all(pipeline, [sends[index] for index in pending], performer, now))


def _send_all(pipeline: WritePipeline, sends: list[_Send], performer: str, keyed_at: datetime | None) -> list[Session]:
    """Decide and commit ``sends`` in one transaction (each item's key kept with its change when ``keyed_at``)."""
    for attempt in range(2):
        fresh = attempt > 0 or not pipeline.caches_reads
        decided = _decide(pipeline, sends, performer, pipeline.now() if keyed_at is None else keyed_at, fresh)
        if decided is None:
            continue  # a cached copy was behind an expected version: read again
        changes, item_of = decided
        if keyed_at is not None:
            changes = [change if item < 0 else _keep(pipeline, change, sends[item].key, keyed_at)
                       for change, item in zip(changes, item_of, strict=True)]
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
