"""The appends of the Redis store: a change as the arguments of the ``APPLY`` script, and its reply as the
store's result or refusal.

``APPLY`` (``scripts.py``) checks every change of its call (versions, ``single_active_per_user``, idempotency
keys) before it writes any, then writes the events, the projection, its indexes, the deadline queue, the feed
positions and the changes' idempotency keys (``keys.py``), all at once. Repeated after a lost connection, it
recognises a change that the lost attempt applied by its first event's record id and does not apply it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.redis.cache import SessionCache
from sessionflow.adapters.redis.codec import encode_event, encode_session, optional, session_fields
from sessionflow.adapters.redis.keys import key_args
from sessionflow.adapters.redis.link import APPLY, RedisLink
from sessionflow.adapters.storage_format import to_millis
from sessionflow.application.ports import Change
from sessionflow.errors import (
    ActiveSessionExists,
    BatchRejected,
    ConcurrencyConflict,
    IdempotencyKeyInFlight,
    StoreError,
)

__all__ = ["MODE_APPEND", "MODE_BATCH", "MODE_SWEEP", "append", "append_many", "change_args", "check_versions"]

#: ``APPLY``'s modes (its second argument): a sweep batch, one change, a batch of changes.
MODE_SWEEP: Final = "0"
MODE_APPEND: Final = "1"
MODE_BATCH: Final = "2"
#: Where ``APPLY`` puts the session's document among a single change's arguments.
_DOC_ARG: Final = 5
_APPLIED, _REFUSED_ACTIVE, _ALREADY_APPLIED, _REFUSED_KEY = 1, 2, 3, 4


def change_args(change: Change, args: list[Any], prefix: str) -> None:
    """Add one change's arguments of the ``APPLY`` script to ``args`` (``prefix``: the store's key prefix)."""
    session = change.session
    events = change.events
    if not events:
        raise StoreError(f"a change of session {session.id} has no event", session_id=session.id)
    status, user, workspace, module, lifecycle, created, due, expires, deleted = session_fields(session)
    decided = change.decided_at
    args += (str(session.id), change.expected_version, encode_session(session), status, user, workspace, module,
             lifecycle, created, due, expires, deleted, optional(change.exclusive_user),
             "" if decided is None else to_millis(decided), str(events[0].record_id), len(events))
    args += key_args(prefix, change.idempotency)
    args += [encode_event(e) for e in events]


def check_versions(change: Change) -> None:
    """Refuse a change whose events do not follow its expected version one by one up to its session's."""
    expected = change.expected_version
    versions = [e.version for e in change.events]
    if (versions != list(range(expected + 1, expected + 1 + len(versions)))
            or change.session.version != expected + len(versions)):
        raise ConcurrencyConflict(change.session.id, expected_version=expected, actual_version=None)


def append(link: RedisLink, cache: SessionCache, change: Change) -> None:
    """Append the change's events and store its projection, atomically (one script call)."""
    check_versions(change)
    args: list[Any] = [link.prefix, MODE_APPEND, 1]
    change_args(change, args, link.prefix)
    session = change.session
    try:
        outcome = link.run("append", lambda: link.write(APPLY, args), WriteOutcome("append", (change,)))
    except BaseException:
        cache.forget((session.id,))
        raise
    code = int(outcome[0])
    if code in (_APPLIED, _ALREADY_APPLIED):
        cache.remember(session.id, args[_DOC_ARG], session)
        return
    cache.forget((session.id,))
    if code == _REFUSED_ACTIVE:
        raise ActiveSessionExists(session.id, user_id=change.exclusive_user or "",
                                  active_session_id=UUID(str(outcome[1])))
    if code == _REFUSED_KEY and change.idempotency is not None:
        raise IdempotencyKeyInFlight(change.idempotency.key)
    raise ConcurrencyConflict(session.id, expected_version=change.expected_version, actual_version=int(outcome[1]))


def append_many(link: RedisLink, cache: SessionCache, changes: Sequence[Change]) -> None:
    """Append every change, in order, atomically (one script call that checks them all before it writes any);
    a refused change raises :class:`BatchRejected` with its index, and nothing is written."""
    batch = list(changes)
    if not batch:
        return
    args: list[Any] = [link.prefix, MODE_BATCH, len(batch)]
    for index, change in enumerate(batch):
        try:
            check_versions(change)
        except ConcurrencyConflict as error:
            raise BatchRejected(index, error) from error
        change_args(change, args, link.prefix)
    try:
        outcome = link.run("append_many", lambda: link.write(APPLY, args), WriteOutcome("append_many", batch))
    finally:
        cache.forget(change.session.id for change in batch)
    if isinstance(outcome[0], list) or int(outcome[0]) == _ALREADY_APPLIED:
        return
    index = int(outcome[2])
    change = batch[index]
    refused: ConcurrencyConflict | ActiveSessionExists | IdempotencyKeyInFlight
    if int(outcome[0]) == _REFUSED_ACTIVE:
        refused = ActiveSessionExists(change.session.id, user_id=change.exclusive_user or "",
                                      active_session_id=UUID(str(outcome[1])))
    elif int(outcome[0]) == _REFUSED_KEY and change.idempotency is not None:
        refused = IdempotencyKeyInFlight(change.idempotency.key)
    else:
        refused = ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                      actual_version=int(outcome[1]))
    raise BatchRejected(index, refused) from refused
