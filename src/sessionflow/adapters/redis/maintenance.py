"""The whole-store operations of the Redis store: every history and projection read in batches, the projection
replaced by a rebuilt one, and closed sessions purged.

The reads pipeline one command per session, ``batch_size`` sessions per round trip. The replacement is one
``MULTI``/``EXEC``: the old documents, indexes, deadlines and counts go and the rebuilt ones come in one
transaction (the key layout is ``scripts.py``'s). The purge is one ``PURGE`` script call (``retention.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, cast
from uuid import UUID

from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.redis.cache import SessionCache
from sessionflow.adapters.redis.codec import decode_event, decode_session, encode_session, session_fields
from sessionflow.adapters.redis.link import PURGE, RedisLink
from sessionflow.domain.models import Session, SessionEvent, SessionStatus

__all__ = ["histories", "projections", "purge_sessions", "replace_projection"]

_IN_PROGRESS: Final = SessionStatus.IN_PROGRESS.value
#: Keys deleted by one ``DEL`` of the replacement.
_DELETE_BATCH: Final = 1000


def histories(link: RedisLink, ids: list[UUID], batch_size: int) -> Iterator[list[SessionEvent]]:
    """The whole history of each session of ``ids``, in that order, ``batch_size`` sessions per round trip."""
    for start in range(0, len(ids), batch_size):
        part = ids[start:start + batch_size]

        def work(part: list[UUID] = part) -> list[Any]:
            pipe = link.client.pipeline(transaction=False)
            for sid in part:
                pipe.lrange(link.key("e", sid), 0, -1)
            return pipe.execute()

        for sid, items in zip(part, link.run("histories", work), strict=True):
            yield [decode_event(item, sid) for item in items]


def projections(link: RedisLink, batch_size: int) -> Iterator[Session]:
    """Every stored projection (deleted sessions included), in id order."""
    client = link.client
    key = link.prefix + "i:all"
    ids: list[str] = sorted(link.run("projections", lambda: cast(Any, client.zrange(key, 0, -1))))
    for start in range(0, len(ids), batch_size):
        part = ids[start:start + batch_size]

        def work(part: list[str] = part) -> list[Any]:
            pipe = link.client.pipeline(transaction=False)
            for sid in part:
                pipe.hget(link.key("s", sid), "doc")
            return pipe.execute()

        for sid, doc in zip(part, link.run("projections", work), strict=True):
            if doc is not None:
                yield decode_session(doc, UUID(sid))


def _projection_keys(link: RedisLink) -> list[str]:
    p = link.prefix
    keys: list[str] = [p + "i:all", p + "due", p + "n"]
    for pattern in ("s:*", "i:*", "a:*"):
        keys.extend(link.client.scan_iter(match=p + pattern, count=1000))
    return keys


def _created_positions(link: RedisLink, ids: list[str]) -> dict[str, int]:
    """Each session's list order: the feed position of its ``created`` event (its first, ``[position, ...``)."""
    order: dict[str, int] = {}
    for start in range(0, len(ids), _DELETE_BATCH):
        part = ids[start:start + _DELETE_BATCH]
        pipe = link.client.pipeline(transaction=False)
        for sid in part:
            pipe.lindex(link.prefix + "e:" + sid, 0)
        for sid, first in zip(part, pipe.execute(), strict=True):
            order[sid] = int(str(first)[1:].split(",", 1)[0]) if first else 0
    return order


def replace_projection(link: RedisLink, cache: SessionCache, rebuilt: Iterable[Session]) -> int:
    """Replace the whole projection (documents, indexes, deadlines, counts) by ``rebuilt`` in one
    ``MULTI``/``EXEC``; returns how many sessions it holds. Run it while no other writer is active."""
    sessions = list(rebuilt)  # fold everything first: a failure changes nothing
    cache.clear()

    def work() -> int:
        old = _projection_keys(link)
        order = _created_positions(link, [str(s.id) for s in sessions])
        pipe = link.client.pipeline(transaction=True)
        for start in range(0, len(old), _DELETE_BATCH):
            pipe.delete(*old[start:start + _DELETE_BATCH])
        p = link.prefix
        for s in sessions:
            sid = str(s.id)
            status, user, workspace, module, lifecycle, created, due, expires, deleted = session_fields(s)
            pipe.hset(p + "s:" + sid, mapping={
                "v": s.version, "st": status, "u": user, "w": workspace, "m": module, "lc": lifecycle,
                "c": created, "cp": order[sid],
                "due": due, "exp": expires, "del": deleted, "doc": encode_session(s)})
            pipe.zadd(p + "i:all", {sid: order[sid]})
            pipe.zadd(p + "i:st:" + status, {sid: order[sid]})
            for kind, value in (("u", user), ("w", workspace), ("m", module)):
                if value:
                    pipe.zadd(f"{p}i:{kind}:{value}", {sid: order[sid]})
            if due:
                pipe.zadd(p + "due", {sid: int(due)})
            if not deleted:
                pipe.hincrby(p + "n", status, 1)
                if status == _IN_PROGRESS and user:
                    pipe.sadd(p + "a:" + user, sid)
        pipe.execute()
        return len(sessions)

    return link.run("replace_projection", work, WriteOutcome("replace_projection"))


def purge_sessions(link: RedisLink, cache: SessionCache, expected: Mapping[UUID, int]) -> list[UUID]:
    """Remove each session of ``expected`` still at that version, except the one holding the feed's newest
    event, atomically (one script call); returns the ids removed."""
    if not expected:
        return []
    args: list[Any] = [link.prefix, len(expected)]
    for sid, version in expected.items():
        args += (str(sid), int(version))
    client = link.client
    outcome = WriteOutcome("purge", session_ids=list(expected))

    def work() -> list[str]:
        if not outcome.unsure:
            return cast(list[str], PURGE(client, args))
        # A repeat after a lost attempt: the sessions already gone were removed by it (or by another purge
        # at the same moment), and count as removed.
        pipe = client.pipeline(transaction=False)
        for sid in expected:
            pipe.exists(link.key("s", sid))
        gone = [str(sid) for sid, there in zip(expected, pipe.execute(), strict=True) if not there]
        return [*cast(list[str], PURGE(client, args)), *gone]

    removed = [UUID(sid) for sid in link.run("purge", work, outcome)]
    cache.forget(removed)
    return removed
