"""The non-public names of SQLAlchemy sessionflow uses, each with what it buys; nowhere else in the package.

* ``QueuePool._max_overflow`` (:func:`pool_capacity`): the SQL store lets threads (PostgreSQL) or idle
  operations (asyncio) keep a pooled connection between operations, which saves a pool checkout and check-in
  — 35 µs of Python per operation (``timeit``, min of 5 runs of 20,000, a ``QueuePool`` on SQLite; against
  some 300 µs of work per transition) — but only up to half the pool's capacity, so that the other half
  always circulates. SQLAlchemy has no public accessor for a pool's overflow limit.
* ``sqlalchemy.util.concurrency.in_greenlet`` (:func:`in_greenlet`): whether the caller runs inside
  :func:`sqlalchemy.util.greenlet_spawn`, where the asyncio facade may wait for the loop with
  :func:`~sqlalchemy.util.await_only` (a call there instead raises). No public function tells it.

``tests/unit/test_compat.py`` fails on an installed SQLAlchemy that lacks either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.pool import QueuePool
from sqlalchemy.util import concurrency

__all__ = ["in_greenlet", "pool_capacity"]


def pool_capacity(pool: Any) -> int:
    """How many connections ``pool`` opens at most (its size plus its overflow); 0 for a pool that is not a
    :class:`~sqlalchemy.pool.QueuePool` (no connection is then kept between operations)."""
    if not isinstance(pool, QueuePool):
        return 0
    return pool.size() + max(0, int(getattr(pool, "_max_overflow", 0)))


def in_greenlet() -> bool:
    """True inside :func:`sqlalchemy.util.greenlet_spawn`."""
    return bool(concurrency.in_greenlet())
