"""The sweep of the Redis store: overdue sessions claimed, decided and expired, exactly once however many
processes sweep.

The overdue sessions are read earliest first with their documents (one ``CLAIM`` script call), decided here,
and written by one ``APPLY`` call in sweep mode, which skips every session whose version moved meanwhile
(another sweeper expired it, a writer completed or touched it): each overdue session gets exactly one
``expired`` event. A batch that lost sessions that way claims again to fill up, at most :data:`ROUNDS` times.
A sweep batch repeated after a lost connection finds the sessions the lost attempt expired no longer due at
that version.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, Final
from uuid import UUID

from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.redis.cache import SessionCache
from sessionflow.adapters.redis.link import APPLY, CLAIM, RedisLink
from sessionflow.adapters.redis.writes import MODE_SWEEP, change_args, check_versions
from sessionflow.adapters.storage_format import from_millis, to_millis
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider
from sessionflow.errors import OutcomeUnknown

__all__ = ["ROUNDS", "expire_due_next"]

#: Rounds of one sweep batch: a round that lost sessions to other writers claims again to fill the batch.
ROUNDS: Final = 50
_APPLIED_FLAG: Final = "1"


def expire_due_next(link: RedisLink, cache: SessionCache, now: datetime, limit: int,
                    decide: ExpiryDecider) -> ExpiredBatch:
    """Expire up to ``limit`` sessions overdue at ``now`` as ``decide`` says; the changes written and the
    earliest deadline left once the batch is written."""
    at = to_millis(now)
    client = link.client
    prefix = link.prefix
    applied: list[Change] = []
    left_alone: set[str] = set()
    earliest = ""
    for _ in range(ROUNDS):
        want = limit - len(applied)
        ask = want + len(left_alone)
        flat = link.run("claim", partial(CLAIM, client, [prefix, at, ask]))
        earliest = flat[0]
        changes: list[Change] = []
        for k in range(1, len(flat), 2):
            if len(changes) >= want:
                break
            sid = flat[k]
            if sid in left_alone:
                continue
            change = decide(cache.decode(UUID(sid), flat[k + 1]), now)
            if change is None:
                left_alone.add(sid)
            else:
                changes.append(change)
        if not changes:
            break
        args: list[Any] = [prefix, MODE_SWEEP, len(changes)]
        for change in changes:
            check_versions(change)
            change_args(change, args, prefix)
        # (a repeat after a lost connection flags the changes the lost attempt applied as applied)
        try:
            flags, earliest = link.run("sweep", partial(link.write, APPLY, args), WriteOutcome("expire", changes))
        except OutcomeUnknown as unknown:
            # The earlier rounds' sessions were expired (and their subscribers are not called: the event
            # feed carries them); say how many.
            _refresh(cache, applied)
            raise unknown.with_applied(len(applied)) from unknown
        lost = False
        for change, flag in zip(changes, flags, strict=True):
            if flag == _APPLIED_FLAG:
                applied.append(change)
            else:
                lost = True
                cache.forget((change.session.id,))
        if len(applied) >= limit or (not lost and (len(flat) - 1) // 2 < ask):
            break
    _refresh(cache, applied)
    next_deadline = from_millis(int(float(earliest))) if earliest else None
    return ExpiredBatch(applied, next_deadline, known=True)


def _refresh(cache: SessionCache, changes: list[Change]) -> None:
    """Forget the cached copies of swept sessions (a sweep of thousands of cold sessions must not evict the
    readers' working set)."""
    if changes:
        cache.forget(change.session.id for change in changes)
