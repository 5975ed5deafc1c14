"""The idempotency keys of the Redis store (:class:`~sessionflow.application.ports.KeepsIdempotencyKeys`).

A key is written by the very ``APPLY`` script that writes its change (``scripts.py``), so a write and its key
commit together or not at all: one string per ``(scope, key)``, ``P k:<n>:<scope>:<key>`` (``n`` the scope's
length in bytes), holding ``<expires (ms)>,<session id>,<version>,<fingerprint>`` and set with ``PX`` the
key's window (``expires_at - created_at``, at least 1 ms) — computed from the record, not from Redis's clock.
The script refuses a change whose key is stored and not expired at the record's ``created_at`` (the manager's
clock: what it compares is the stored ``expires``, never whether Redis still holds the key), and replaces an
expired one.

Redis drops a key by itself once its window has passed on Redis's clock. The contract asks more: a store drops
the keys expired by the *manager's* clock (``drop_expired_keys(now)``), which may run ahead of Redis's (a
manual clock in tests, a clock set by the application). Finding those by scanning the key space (``SCAN``
with a pattern) would walk every key of the database each time; so the scripts keep an index instead, kept in
the same scripts as the keys themselves: ``P kx``, a sorted set scored by each key's ``expires`` (member
``<session id>:<key's name>``), read from its low end by :data:`~sessionflow.adapters.redis.scripts.DROP_KEYS`
— a drop costs the keys it removes, not the size of the store. A purge finds a session's keys through
``P ks:<session id>``, the set of the names its writes stored, and removes them in its own script
(``retention.py``). Entries whose key Redis already expired are cleaned up by the next drop or purge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.redis.link import DROP_KEYS, RedisLink
from sessionflow.adapters.storage_format import from_millis, to_millis
from sessionflow.application.idempotency import IdempotencyRecord, StoredKey

__all__ = ["NO_KEY", "decode_key", "drop_expired_keys", "find_key", "key_args", "key_name", "window_ms"]

#: ``APPLY``'s idempotency arguments of a change without a key.
NO_KEY: Final = ("", "", "", "", "")


def key_name(prefix: str, scope: str, key: str) -> str:
    """The Redis key holding the idempotency key ``key`` of ``scope``."""
    return f"{prefix}k:{len(scope.encode())}:{scope}:{key}"


def window_ms(record: IdempotencyRecord) -> int:
    """The key's Redis expiry (``PX``): its window, ``expires_at - created_at``, in milliseconds, at least 1."""
    return max(1, to_millis(record.expires_at) - to_millis(record.created_at))


def key_args(prefix: str, record: IdempotencyRecord | None) -> tuple[str, ...]:
    """``APPLY``'s idempotency arguments of a change: the key's name, its fingerprint, created and expires
    (ms), and its window (ms); :data:`NO_KEY` without a record."""
    if record is None:
        return NO_KEY
    return (key_name(prefix, record.scope, record.key), record.fingerprint, str(to_millis(record.created_at)),
            str(to_millis(record.expires_at)), str(window_ms(record)))


def decode_key(value: str) -> StoredKey:
    """The stored key a key's value holds (``<expires>,<session id>,<version>,<fingerprint>``)."""
    expires, session_id, version, fingerprint = value.split(",", 3)
    return StoredKey(fingerprint, UUID(session_id), int(version), from_millis(int(expires)))


def find_key(link: RedisLink, scope: str, key: str) -> StoredKey | None:
    """The stored key ``key`` of ``scope`` (one ``GET``), or ``None``.

    With ``wait_replicas``, a key found is returned only once the replicas asked for hold it (and so the write
    it was stored with: :meth:`RedisLink.confirm_replicated`): the manager answers a retried write from it,
    and an answer must survive the loss of the primary as an acknowledged write does. Fewer replicas in time
    raise :class:`~sessionflow.errors.OutcomeUnknown` for that write, as its own append did."""
    name = key_name(link.prefix, scope, key)
    client = link.client
    value: Any = link.run("find_key", lambda: client.get(name))
    if value is None:
        return None
    stored = decode_key(str(value))
    if link.wait_replicas:
        link.run("find_key", link.confirm_replicated, WriteOutcome("append", session_ids=[stored.session_id]))
    return stored


def drop_expired_keys(link: RedisLink, now: datetime, limit: int) -> int:
    """Remove up to ``limit`` keys whose ``expires`` is at or before ``now`` (one script); how many."""
    if limit <= 0:
        return 0
    args = [link.prefix, to_millis(now), int(limit)]
    client = link.client
    return int(link.run("drop_expired_keys", lambda: DROP_KEYS(client, args), WriteOutcome("drop_expired_keys")))
