"""Helpers for testing code that uses sessionflow: a controllable clock and ready-made managers.

This module is also a pytest plugin (registered through the ``pytest11`` entry point), so installing
sessionflow gives a test suite its fixtures. It imports nothing heavy at import time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sessionflow.domain.values import to_utc

__all__ = ["ManualClock"]


class ManualClock:
    """A clock that moves only when told to. Thread-safe.

    >>> clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    >>> clock.advance(timedelta(minutes=5)).isoformat()
    '2030-01-01T00:05:00+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = to_utc(start, "start") if start is not None else datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (which may not be in the past)."""
        when = to_utc(when, "when")
        with self._lock:
            if when < self._now:
                raise ValueError(f"the clock does not go back: {when.isoformat()} < {self._now.isoformat()}")
            self._now = when
            return when

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError("the clock does not go back")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
