"""Deadline rules: when a session expires. Pure functions of times and durations.

* On creation ``expires_at = created_at + ttl``; with an absolute cap (``max_lifetime``) the session can
  never live past ``created_at + max_lifetime``, and that cap is recorded as ``max_expires_at``.
* ``touch`` always moves the deadline to ``now + ttl`` (never beyond the cap).
* With sliding expiry on, every write moves it the same way.

Every deadline is truncated to the millisecond, like every timestamp the engine records, so a deadline
read back from any store equals the one computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sessionflow.domain.values import truncate_to_ms

__all__ = ["DeadlinePolicy", "initial_deadline", "refreshed_deadline"]


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """How deadlines move: ``sliding`` refreshes on every write; ``max_lifetime`` caps a session's life."""

    sliding: bool = False
    max_lifetime: timedelta | None = None


def initial_deadline(created_at: datetime, ttl: timedelta,
                     max_lifetime: timedelta | None = None) -> tuple[datetime, datetime | None]:
    """The deadline of a new session and its absolute cap (``None`` without a maximum lifetime)."""
    cap = truncate_to_ms(created_at + max_lifetime) if max_lifetime is not None else None
    expires_at = truncate_to_ms(created_at + ttl)
    if cap is not None and expires_at > cap:
        expires_at = cap
    return expires_at, cap


def refreshed_deadline(now: datetime, ttl: timedelta, cap: datetime | None) -> datetime:
    """``now + ttl``, never beyond ``cap``."""
    expires_at = truncate_to_ms(now + ttl)
    if cap is not None and expires_at > cap:
        return cap
    return expires_at
