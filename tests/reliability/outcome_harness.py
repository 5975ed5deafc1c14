"""The harness of the outcome tests (``test_outcome_truth.py``): the wire patterns that pick the request to fault,
the servers' backdrop (a direct setup manager, a truth reader), one test's proxy and managers, and the faults.

The patterns: for PostgreSQL the SQL text (a statement's first executions on a connection carry it; psycopg
sends a prepared statement by name only after several), for Redis the script's SHA1 and its first arguments as
redis-py sends them (the APPLY script's mode: 1 an append, 2 a batch, 0 a sweep).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy.engine import make_url

from sessionflow import AsyncSessionManager, SessionManager
from sessionflow.adapters.redis import scripts
from sessionflow.adapters.redis.retention import PURGE
from sessionflow.testing import ManualClock
from tests.reliability.outcome_checks import Outcome, PgTruth, RedisTruth, judge, truth_for
from tests.support.async_bridge import LoopThread, SyncBridge
from tests.support.faultproxy import FaultProxy, proxied_url, resp

ROOT = Path(__file__).resolve().parents[2]

#: New connections are refused this long: longer than any retry budget used here (SQL ``retries=1``: 0.1 s of
#: back-off; Redis: 0.05 s), so the store cannot reach the server again.
LONG = 1.5
#: Shorter than the first back-off of either store (SQL 0.1 s, Redis 0.05 s): the first retry gets through.
SHORT = 0.02
PREFIX = "sessionflow:"


def _evalsha(script: str, *args: str | int) -> bytes:
    """The bytes redis-py sends for ``EVALSHA <script's sha> 0 *args`` (without the array header, whose count
    covers the arguments that follow)."""
    sha = hashlib.sha1(script.encode()).hexdigest()
    return resp("EVALSHA", sha, 0, *args).partition(b"\r\n")[2]


# What travels on the wire (see the module's docstring).
PG_APPEND = b"INSERT INTO session_events"
PG_COMMIT = b"COMMIT"
PG_CLAIM = b"FOR UPDATE SKIP LOCKED"
PG_PURGE = b"DELETE FROM sessions WHERE"
PG_SAVE = b"INSERT INTO sessionflow_consumers"
R_APPEND = _evalsha(scripts.APPLY, PREFIX, 1)
R_APPEND_MANY = _evalsha(scripts.APPLY, PREFIX, 2)
R_SWEEP = _evalsha(scripts.APPLY, PREFIX, 0)
R_CLAIM = _evalsha(scripts.CLAIM, PREFIX)
R_PURGE = _evalsha(PURGE, PREFIX)
R_SAVE = _evalsha(scripts.SAVE_CONSUMER, PREFIX)
_REDIS_SCRIPTS = (scripts.APPLY, scripts.CLAIM, scripts.QUERY, scripts.READ_EVENTS, scripts.SAVE_CONSUMER, PURGE,
                  scripts.DROP_KEYS)


# --------------------------------------------------------------------------- the harness


T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Backdrop:
    """What the tests of one store share (for speed): the server's URL, a clock, a manager that talks to the
    server directly (for the setup: no cache, same clock) and a truth reader. :meth:`reset` empties the server."""

    def __init__(self, store: str, url: str) -> None:
        self.store = store
        self.url = url
        port = make_url(url).port
        assert port is not None
        self.port = port
        self.clock = ManualClock(T0)
        self.seed = SessionManager.open(url, clock=self.clock, cache_size=0)
        self.truth = truth_for(url)

    def reset(self) -> None:
        """Empty the server (the clock only moves on: each test works relative to its time)."""
        if isinstance(self.truth, PgTruth):
            with self.truth.conn.transaction():  # a few rows: DELETE costs a tenth of a TRUNCATE
                for table in ("sessions", "session_events", "sessionflow_consumers"):
                    self.truth.conn.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]
            return
        assert isinstance(self.truth, RedisTruth)
        self.truth.client.flushdb()
        # Every script known to the server (as after any earlier use), so that the first EVALSHA of the store under
        # test runs its script instead of asking for it to be loaded (a reply that must not be the one lost).
        for text in _REDIS_SCRIPTS:
            self.truth.client.script_load(text)

    def close(self) -> None:
        self.seed.close()
        self.truth.close()




class Harness:
    """One test's proxy in front of its store's emptied server, and the managers it opens through it
    (:meth:`open`); ``seed``, ``truth`` and ``clock`` are the backdrop's."""

    def __init__(self, backdrop: Backdrop, flavour: str = "sync") -> None:
        backdrop.reset()
        self.store = backdrop.store
        self.flavour = flavour
        self.clock = backdrop.clock
        self.seed = backdrop.seed
        self.truth = backdrop.truth
        self.marker = f"u-{uuid4().hex[:12]}"
        self.proxy = FaultProxy(backdrop.port, settle=0.02).start()
        self.proxy_url = proxied_url(backdrop.url, self.proxy.port)
        self._loop: LoopThread | None = None
        self._managers: list[Any] = []

    def open(self, retries: int, **options: Any) -> Any:
        """The manager under test, through the proxy: a :class:`SessionManager`, or an
        :class:`AsyncSessionManager` driven through a synchronous bridge (``flavour="async"``)."""
        options = {"clock": self.clock, "migrate": False, **options}
        if self.flavour == "sync":
            manager: Any = SessionManager.open(self.proxy_url, retries=retries, **options)
        else:
            if self._loop is None:
                self._loop = LoopThread()

            async def open_() -> AsyncSessionManager:
                return await AsyncSessionManager.open(self.proxy_url, retries=retries, **options)

            manager = SyncBridge(self._loop.run(open_()), self._loop)
        self._managers.append(manager)
        # Connected once before any fault is armed: the engine's first connection runs queries of its own (its
        # dialect's initialisation, in a transaction of its own: BEGIN ... COMMIT).
        manager.count()
        return manager

    def close(self) -> None:
        self.proxy.stop_refusing()
        for manager in self._managers:
            with contextlib.suppress(Exception):
                manager.close()
        if self._loop is not None:
            self._loop.close()
        self.proxy.close()


@contextlib.contextmanager
def harness(store: str, request: pytest.FixtureRequest, flavour: str = "sync") -> Iterator[Harness]:
    """A :class:`Harness` on ``store``'s backdrop (the test module's ``backdrops`` fixture), closed afterwards."""
    backdrop = request.getfixturevalue("backdrops")(store)
    h = Harness(backdrop, flavour)
    try:
        yield h
    finally:
        h.close()


# --------------------------------------------------------------------------- the faults


@dataclass(frozen=True)
class Mode:
    name: str
    retries: int
    refuse_for: float
    #: The lost reply is that of a statement before the commit (the kind's ``before`` pattern).
    before_commit: bool = False
    #: The request itself is lost (never reaches the server).
    request_lost: bool = False
    #: The refusal ends within the retry budget: the store can look the write up.
    lookup: bool = False

    @property
    def applies(self) -> bool:
        """Whether the fault leaves the write applied on the server (it came after the commit)."""
        return not (self.before_commit or self.request_lost)

    def arm(self, proxy: FaultProxy, pattern: bytes, skip: int = 0) -> None:
        cut = not self.lookup  # no way left to the server: no idle connection of the pool either
        if self.request_lost:
            proxy.drop_request(pattern, self.refuse_for, kill_all=cut, skip=skip)
        else:
            proxy.drop_reply_after(pattern, self.refuse_for, kill_all=cut, skip=skip)


NO_LOOKUP = Mode("reply-lost-no-lookup", retries=1, refuse_for=LONG)
LOOKUP = Mode("reply-lost-lookup", retries=2, refuse_for=SHORT, lookup=True)
BEFORE_COMMIT = Mode("reply-before-commit-lost", retries=1, refuse_for=LONG, before_commit=True)
REQUEST_LOST = Mode("request-lost", retries=1, refuse_for=LONG, request_lost=True)


def verdict(what: str, outcome: Outcome, applied: int, mode: Mode) -> None:
    """The three rules, then what this fault leaves possible."""
    judge(what, outcome, applied)
    if mode.applies:  # (the fault came after the commit: a check of the test itself)
        assert applied == 1, f"{what}: the commit's reply was lost, yet the server does not hold the write"
    else:
        assert applied == 0, f"{what}: the fault came before the commit, yet the server holds the write"
    if mode.lookup:
        assert outcome.kind == "success", (f"{what}: the write could be looked up within the retry budget, but the "
                                           f"store reported {outcome.describe()} instead of success")
    elif not mode.applies:
        assert outcome.kind != "success", f"{what}: success, though the server could not be reached"
