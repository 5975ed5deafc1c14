"""Idempotency keys: a key the client chooses, stored with its write, so that a retried write is answered, not
applied again.

A write given a key (``idempotency_key=`` on every write of the managers, ``--idempotency-key`` in the CLI, the
``Idempotency-Key`` header over HTTP) runs with the key, in the key's *scope* (the performer in the library, the
principal over HTTP); the store keeps the key — with the request's fingerprint, the session and the version the
write left — in the write's own transaction, so a write and its key are applied together or not at all, and it
refuses a change whose key it holds already, live (:class:`~sessionflow.errors.IdempotencyKeyInFlight`), writing
nothing. Nothing is looked up before the write: a write sent once costs no extra read. When the write fails —
refused by its stored key, refused by the lifecycle because the first attempt moved the session on, or its reply
lost (:class:`~sessionflow.errors.OutcomeUnknown`) — the key is looked up:

- stored for the same request (same :func:`fingerprint`): the answer is the session as it was right after the
  first write (its history folded up to the stored version), and nothing was written by this call;
- stored for another request: :class:`~sessionflow.errors.IdempotencyKeyReused`;
- not stored (or stored longer ago than the window: the store then replaces it): the write's own error stands.

A write with the same key and scope still under way in this process is refused at once
(:class:`~sessionflow.errors.IdempotencyKeyInFlight`). Two processes racing with one key both run; the store keeps
one key per scope, so one of them commits and the other is answered with the first one's result. A write that
was refused (an invalid transition, a conflict) stores no key: retrying it runs it again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple
from uuid import UUID

from sessionflow.domain.models import Session
from sessionflow.domain.replay import replay
from sessionflow.errors import (
    BatchRejected,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
    SessionflowError,
    SessionNotFound,
)

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_KEY_LENGTH",
    "IdempotencyKey",
    "IdempotencyRecord",
    "KeyGuard",
    "KeyRequest",
    "StoredKey",
    "check_key",
    "fingerprint",
    "key_request",
]

#: How long a key is kept by default (the ``idempotency_window`` of the managers and settings).
DEFAULT_WINDOW: Final = timedelta(hours=24)
#: The longest key accepted, in characters.
MAX_KEY_LENGTH: Final = 255


class IdempotencyKey:
    """An idempotency key with an explicit scope, and what became of the write it was given to.

    Pass a plain string as ``idempotency_key=`` to scope the key to the write's performer; pass an
    ``IdempotencyKey`` to choose the scope (the HTTP service scopes keys to the authenticated principal). After
    the write returns, :attr:`replayed` tells whether it was answered from the stored key (``True``: nothing
    was written by this call) or written now (``False``).
    """

    __slots__ = ("key", "replayed", "scope")

    def __init__(self, key: str, *, scope: str | None = None) -> None:
        self.key = key
        self.scope = scope
        #: Whether the last write given this key was answered from the stored key instead of written.
        self.replayed = False

    def __repr__(self) -> str:
        return f"IdempotencyKey({self.key!r}, scope={self.scope!r}, replayed={self.replayed})"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The key a store keeps with a change (``Change.idempotency``), for the session and version the change
    leaves. ``created_at`` is when the write was decided; the key is kept until ``expires_at``."""

    scope: str
    key: str
    fingerprint: str
    created_at: datetime
    expires_at: datetime


class StoredKey(NamedTuple):
    """A key as a store returns it (``find_key``): the request it was stored for and what that write left."""

    fingerprint: str
    session_id: UUID
    version: int
    expires_at: datetime


class KeyRequest(NamedTuple):
    """A write's key, its scope and its request's fingerprint, checked and computed at the edge."""

    scope: str
    key: str
    fingerprint: str
    #: The caller's :class:`IdempotencyKey`, or one made for a plain string key: what the write did is noted on it.
    handle: IdempotencyKey


def _canonical(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (datetime, UUID)):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(str(item) for item in value)
    return str(value)


#: The canonical JSON of :func:`fingerprint`, built once (``json.dumps`` with options builds an encoder per call:
#: half of a fingerprint's cost).
_CANONICAL_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                          default=_canonical)


def fingerprint(operation: str, session_id: UUID | None, arguments: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of the operation's name, the session id (none for a create) and its validated arguments,
    as canonical JSON (keys sorted, durations in seconds). The performer is the key's scope, not part of it."""
    text = _CANONICAL_JSON.encode([operation, None if session_id is None else str(session_id), arguments])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_key(value: Any, field: str = "idempotency_key") -> str:
    """``value`` if it is a well-formed key (a string of 1 to :data:`MAX_KEY_LENGTH` printable ASCII characters),
    else :class:`~sessionflow.errors.InvalidInput` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected a string, got {type(value).__name__}")
    if not 0 < len(value) <= MAX_KEY_LENGTH:
        raise InvalidInput(field, f"must be 1 to {MAX_KEY_LENGTH} characters long")
    if not (value.isascii() and value.isprintable()):
        raise InvalidInput(field, "must be printable ASCII (space to '~')")
    return value


def key_request(value: Any, performer: str, operation: str, session_id: UUID | None,
                arguments: Mapping[str, Any]) -> KeyRequest | None:
    """The checked key of a write (``None`` without one): a string is scoped to ``performer``, an
    :class:`IdempotencyKey` to its own scope (its performer's when it has none)."""
    if value is None:
        return None
    if isinstance(value, IdempotencyKey):
        handle = value
        key = check_key(handle.key)
        scope = handle.scope if handle.scope is not None else f"performer:{performer}"
        if not isinstance(scope, str) or not scope:
            raise InvalidInput("idempotency_key", "the key's scope must be a non-empty string")
        handle.replayed = False
    else:
        key = check_key(value)
        handle = IdempotencyKey(key)
        scope = f"performer:{performer}"
    return KeyRequest(scope, key, fingerprint(operation, session_id, arguments), handle)


class KeyGuard:
    """Runs the keyed writes of one manager: answers a stored key, keeps one write per key in flight, and hands
    the write the record its store keeps. ``store`` has ``find_key`` and ``history``."""

    __slots__ = ("_in_flight", "_lock", "store", "window")

    def __init__(self, store: Any, window: timedelta) -> None:
        self.store = store
        self.window = window
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str]] = set()

    def record(self, request: KeyRequest, now: datetime) -> IdempotencyRecord:
        """The record a change written at ``now`` under ``request`` keeps."""
        return IdempotencyRecord(request.scope, request.key, request.fingerprint, now, now + self.window)

    @contextmanager
    def holding(self, requests: Sequence[KeyRequest]) -> Iterator[None]:
        """Mark the keys of ``requests`` in flight while the block runs. If another write of this process holds
        one of them, none is held and :class:`~sessionflow.errors.IdempotencyKeyInFlight` is raised (for several
        requests: :class:`~sessionflow.errors.BatchRejected` naming the first such one by its place in
        ``requests``)."""
        tokens = [(request.scope, request.key) for request in requests]
        with self._lock:
            for index, token in enumerate(tokens):
                if token in self._in_flight:
                    error = IdempotencyKeyInFlight(token[1])
                    raise error if len(tokens) == 1 else BatchRejected(index, error)
            self._in_flight.update(tokens)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.difference_update(tokens)

    def run(self, request: KeyRequest, now: datetime, write: Callable[[IdempotencyRecord], Session]) -> Session:
        """Run ``write`` with the record to keep with its change; when it fails, answer ``request`` from its
        stored key if there is one (the write is not looked up first: a write sent once costs no extra read)."""
        token = (request.scope, request.key)
        in_flight = self._in_flight
        with self._lock:  # (what holding() does, for one key, without its generator: this is every keyed write)
            if token in in_flight:
                raise IdempotencyKeyInFlight(request.key)
            in_flight.add(token)
        try:
            return write(IdempotencyRecord(request.scope, request.key, request.fingerprint, now, now + self.window))
        except SessionflowError as error:
            # The key may be stored: by an earlier attempt (its key refused ours, or its write moved the
            # session on so that ours was refused), by another process meanwhile, or by this very write
            # although its reply was lost. A key stored for this request answers; else the error stands.
            try:
                answer = self.answer(request, now)
            except IdempotencyKeyReused:
                raise
            except SessionflowError:  # the lookup failed too: the write's own error stands
                raise error from None
            if answer is None:
                raise
            return answer
        finally:
            with self._lock:
                in_flight.discard(token)

    def answer(self, request: KeyRequest, now: datetime) -> Session | None:
        """The session as the stored write of ``request``'s key left it, or ``None`` when no live key is stored.
        Raises :class:`~sessionflow.errors.IdempotencyKeyReused` when the key was stored for another request."""
        stored: StoredKey | None = self.store.find_key(request.scope, request.key)
        if stored is None or stored.expires_at <= now:
            return None
        if stored.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused(request.key)
        events = [event for event in self.store.history(stored.session_id) if event.version <= stored.version]
        if len(events) != stored.version:  # purged meanwhile (purge removes its keys too)
            raise SessionNotFound(stored.session_id)
        request.handle.replayed = True
        return replay(events)
