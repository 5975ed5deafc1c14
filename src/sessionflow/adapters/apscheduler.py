"""``ApschedulerWaker``: wakes the engine at the earliest deadline, with APScheduler 3 as the trigger.

The deadlines live in the store. The waker adds two jobs to its scheduler, whatever the number of sessions: the
*date job* at the earliest pending deadline (paused while no session is live; an earlier deadline re-arms it at
once) and the *interval job*, every ``cleanup_interval``, a safety net. Both run on the waker's ``DebugExecutor``
under the scheduler's job-store lock, and do nothing: there the waker could neither sweep (a re-arm waits for that
lock) nor re-arm (APScheduler removes a fired date job *after* its run). The wake-up is the ``EVENT_JOB_SUBMITTED``
event that follows, once the fired job is removed and the lock free. Its listener runs the sweep on the scheduler's
own thread if the waker created a ``BackgroundScheduler`` (no hand-off to wait for the GIL per wake-up), else on
the waker's one-thread pool, then arms the date job at the deadline the sweep found (or an earlier one notified
meanwhile). One lock guards the state: held while arming, never while a sweep, a subscriber or a watcher runs.
Exactly-once expiry is the store's (sweeps claim rows with a versioned compare-and-set).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol
from uuid import uuid4

from apscheduler.events import EVENT_JOB_SUBMITTED  # type: ignore[import-untyped]
from apscheduler.executors.debug import DebugExecutor  # type: ignore[import-untyped]
from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from sessionflow.application.ports import Clock, SystemClock
from sessionflow.application.watching import ChangeWatcher, Notice
from sessionflow.errors import InvalidInput

__all__ = ["ApschedulerWaker", "SweepTarget"]

logger = logging.getLogger("sessionflow.waker")

#: The options of both jobs: never drop a late wake-up, never queue two, never run two at once.
JOB_OPTIONS: Final = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
_MIN_INTERVAL: Final = timedelta(seconds=1)
_RETRY_START: Final = timedelta(milliseconds=50)
_RETRY_MAX: Final = timedelta(seconds=5)


class SweepTarget(Protocol):
    """What the waker drives: a :class:`~sessionflow.SessionManager` (or anything shaped like one). One that also
    offers ``sweep(batch_size=...) -> (expired, next_deadline)`` is re-armed with no read of the waker's own."""

    @property
    def clock(self) -> Clock: ...

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int: ...

    def next_deadline(self) -> datetime | None: ...


def _job() -> None:
    """The jobs' callable: the wake-up is the submission event that follows it (see the module's docstring)."""


@dataclass(frozen=True, slots=True)
class _Run:
    """What one start set up and one stop tears down (``pool``: where sweeps run; ``None``: the scheduler's thread)."""

    scheduler: Any
    pool: ThreadPoolExecutor | None
    watcher: ChangeWatcher | None = None
    unsubscribe: Callable[[], None] | None = None


class ApschedulerWaker:
    """Wakes a manager at its deadlines with one APScheduler date job and one safety-net interval job.

    Args:
        target: the manager to drive; may be given later with :meth:`bind` (``SessionManager.start_timeouts`` does).
        cleanup_interval: period of the safety-net sweep (default five minutes, at least one second).
        scheduler: an APScheduler 3 scheduler to add the two jobs to. The waker starts it if it is not running, and
            on :meth:`stop` removes only its own jobs, listener and executor: the caller owns it. By default the waker
            creates, starts and shuts down its own ``BackgroundScheduler`` (``kind="asyncio"``: its own
            ``AsyncIOScheduler`` on the running event loop).
        kind: ``"background"`` (a scheduler thread) or ``"asyncio"`` (timers on an event loop); only used when the
            waker creates the scheduler.
        batch_size: sessions expired per transaction in a sweep.
        watcher: a change watcher reporting writes of other processes (see :meth:`follow`); by default the one the
            manager offers when it starts the waker. The waker subscribes while it runs and starts the watcher if
            needed, but never stops it: whoever built it does.

    The waker's methods are thread-safe; :meth:`notify_deadline` costs a comparison unless it re-arms. ``sweeps``,
    ``expired``: sweeps run and sessions expired; ``last_error``: the last sweep's error until one succeeds;
    ``notices``: the ``"deadline"`` and ``"changed"`` notices received while running.
    """

    def __init__(self, target: SweepTarget | None = None, *, cleanup_interval: timedelta = timedelta(minutes=5),
                 scheduler: Any = None, kind: Literal["background", "asyncio"] = "background", event_loop: Any = None,
                 batch_size: int = 1000, watcher: ChangeWatcher | None = None) -> None:
        if not isinstance(cleanup_interval, timedelta) or cleanup_interval < _MIN_INTERVAL:
            raise InvalidInput("cleanup_interval", f"must be a timedelta of at least {_MIN_INTERVAL}")
        if kind not in ("background", "asyncio"):
            raise InvalidInput("kind", "must be 'background' or 'asyncio'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise InvalidInput("batch_size", "must be an integer between 1 and 100000")
        self._target, self.cleanup_interval, self.batch_size = target, cleanup_interval, batch_size
        self._given_scheduler, self._kind, self._event_loop, self._watcher = scheduler, kind, event_loop, watcher
        self._offered: Callable[[], ChangeWatcher | None] | None = None  # the manager's watcher, built on start
        suffix = uuid4().hex[:12]
        #: The ids of the two jobs and of the executor they run on (unique per waker).
        self.deadline_job_id = f"sessionflow-deadline-{suffix}"
        self.interval_job_id = f"sessionflow-sweep-{suffix}"
        self.executor_alias = f"sessionflow-{suffix}"
        self._lock = threading.Lock()  # guards what follows; held while arming, never while sweeping
        self._run: _Run | None = None  # set while running
        self._starting: object | None = None  # the token of the start in progress (a stop clears it: cancelled)
        self._sweeping = False  # from a firing until the date job is armed again
        self._sweeper: int | None = None  # the thread of the sweep under way
        self._armed_at: datetime | None = None  # the deadline (clock time) the date job is armed at
        self._pending: datetime | None = None  # the earliest deadline notified during the sweep under way
        self._retry = _RETRY_START
        self.sweeps = self.expired = self.notices = 0
        self.last_error: BaseException | None = None

    @classmethod
    def for_asyncio(cls, target: SweepTarget | None = None, *, event_loop: Any = None,
                    **options: Any) -> ApschedulerWaker:
        """A waker on its own ``AsyncIOScheduler``, for asyncio hosts (FastAPI, aiohttp, ...): start it from the
        event loop's thread (or pass ``event_loop``). Its timers run on the loop, its sweeps on the waker's thread."""
        return cls(target, kind="asyncio", event_loop=event_loop, **options)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._run is not None

    @property
    def scheduler(self) -> Any:
        """The APScheduler scheduler in use (``None`` while stopped)."""
        return None if self._run is None else self._run.scheduler

    @property
    def sweeping(self) -> bool:
        """True from a firing until the date job is armed again (meanwhile APScheduler may hold one job)."""
        return self._sweeping

    @property
    def armed_at(self) -> datetime | None:
        """The deadline the date job is armed at (``None`` when it is paused or a sweep is under way)."""
        return self._armed_at

    @property
    def watcher(self) -> ChangeWatcher | None:
        """The change watcher the waker follows while it runs (``None``: none, or not started)."""
        return None if self._run is None else self._run.watcher

    def follow(self, watcher: ChangeWatcher | Callable[[], ChangeWatcher | None] | None) -> None:
        """Offer the watcher to follow from the next :meth:`start` (one given to the constructor wins); a function
        building it is called at start (``SessionManager.start_timeouts`` offers the manager's so)."""
        self._offered = (lambda: watcher) if watcher is None or isinstance(watcher, ChangeWatcher) else watcher

    def bind(self, target: SweepTarget) -> None:
        """Drive ``target``. Raises :class:`~sessionflow.errors.InvalidInput` while running on another one."""
        with self._lock:
            if (self._run or self._starting) is not None and target is not self._target:
                raise InvalidInput("waker", "is running for another manager; stop it first")
            self._target = target

    def start(self) -> None:
        """Sweep once now in the calling thread (restart catch-up: what fell due while nothing ran is expired when
        it returns; its errors propagate and nothing starts), then add the two jobs and start waking. Idempotent."""
        token = object()
        with self._lock:
            if (self._run or self._starting) is not None:
                return
            if (target := self._target) is None:
                raise InvalidInput("waker", "has no manager to drive: call bind(manager) first")
            self._starting = token
        try:
            started = target.clock.now()
            expired = target.expire_sessions(batch_size=self.batch_size)
            run = self._set_up()
        except BaseException:
            with self._lock:
                self._starting = None if self._starting is token else self._starting
            raise
        with self._lock:
            self.sweeps, self.expired, self.last_error = self.sweeps + 1, self.expired + expired, None
            if not (cancelled := self._starting is not token):  # deadlines notified from now on wait for _finish
                self._run, self._starting, self._sweeping = run, None, True
        if cancelled:
            self._tear_down(run, inside=False)
            return
        try:
            self._finish(run, started, self._next_deadline(target))
        except BaseException:
            self.stop()
            raise
        logger.debug("waker started (catch-up sweep expired %d sessions)", expired)

    def _next_deadline(self, target: SweepTarget) -> datetime | None:
        """The store's next deadline, read after subscribing to the watcher (a later write is then notified)."""
        try:
            return target.next_deadline()
        except Exception as error:  # retried like a failed sweep
            self.last_error = error
            logger.exception("could not read the next deadline; retrying")
            return None

    def _set_up(self) -> _Run:
        owns = self._given_scheduler is None
        scheduler = self._new_scheduler() if owns else self._given_scheduler
        inline = owns and self._kind == "background"
        run = _Run(scheduler, None if inline else ThreadPoolExecutor(1, thread_name_prefix="sessionflow-waker"))
        try:
            scheduler.add_executor(DebugExecutor(), self.executor_alias)
            scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
            scheduler.add_job(_job, IntervalTrigger(seconds=self.cleanup_interval.total_seconds(), timezone=UTC),
                              id=self.interval_job_id, name="sessionflow safety-net sweep",
                              executor=self.executor_alias, replace_existing=True, **JOB_OPTIONS)
            if not scheduler.running:
                scheduler.start()
            watcher = self._watcher or (self._offered() if self._offered is not None else None)
            if watcher is not None:
                run = _Run(scheduler, run.pool, watcher, watcher.subscribe(self._on_notice))
                watcher.start()
        except BaseException:
            self._tear_down(run, inside=False)
            raise
        return run

    def stop(self) -> None:
        """Remove the jobs and join the waker's threads (waiting for a sweep in progress). Idempotent.

        A scheduler the waker created is shut down; one given to it is left running without the waker's jobs,
        listener and executor. From inside a sweep (a subscriber) it does not wait for it; during a start it cancels it.
        """
        with self._lock:
            run, self._run, self._starting = self._run, None, None
            self._sweeping, self._armed_at, self._pending, self._retry = False, None, None, _RETRY_START
            inside = self._sweeper == threading.get_ident()
        if run is not None:
            self._tear_down(run, inside=inside)
            logger.debug("waker stopped")

    def _tear_down(self, run: _Run, *, inside: bool) -> None:
        if run.unsubscribe is not None:
            run.unsubscribe()
        scheduler = run.scheduler
        scheduler.remove_listener(self._on_submitted)
        for job_id in (self.deadline_job_id, self.interval_job_id):  # each waits for a firing being processed
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(job_id)
        if self._given_scheduler is not None:
            with contextlib.suppress(KeyError):
                scheduler.remove_executor(self.executor_alias)
        elif scheduler.running and self._kind == "asyncio":
            with contextlib.suppress(RuntimeError):  # (the loop is closed)
                scheduler.shutdown(wait=False)  # finishes on the loop
        elif scheduler.running and inside:  # on the scheduler's thread, which shutdown() joins: from another one
            threading.Thread(target=scheduler.shutdown, name="sessionflow-waker-stop", daemon=True).start()
        elif scheduler.running:
            scheduler.shutdown()
        if run.pool is not None:
            run.pool.shutdown(wait=not inside, cancel_futures=True)

    def notify_deadline(self, deadline: datetime) -> None:
        """A write set ``deadline``: re-arm the date job if it is earlier than the armed one."""
        with self._lock:
            if self._run is None:
                return
            if self._sweeping:  # the sweep under way arms when it ends, counting this deadline
                if self._pending is None or deadline < self._pending:
                    self._pending = deadline
            elif self._armed_at is None or deadline < self._armed_at:
                self._arm(deadline)

    def wakeup(self) -> None:
        """Ask for a sweep now (in the background), e.g. after moving a frozen clock in a test."""
        now = self._clock().now()
        with self._lock:
            if self._run is not None and not self._sweeping:
                self._arm(now)

    def _on_notice(self, notice: Notice) -> None:
        """A change watcher saw a write (of any process): re-arm if it set an earlier deadline."""
        if self._run is None or notice.kind == "events":
            return
        self.notices += 1
        deadline, target = notice.deadline, self._target
        if (notice.kind != "deadline" or deadline is None) and target is not None:
            try:
                deadline = target.next_deadline()
            except Exception:  # the safety net and the next notice will try again
                if self._run is not None:  # (a store closed under a stopping waker is no news)
                    logger.exception("could not read the next deadline after a change")
                return
        if deadline is not None:
            self.notify_deadline(deadline)

    def _on_submitted(self, event: Any) -> None:
        """APScheduler ran one of the jobs, removed the date job if that one fired, and released its lock."""
        if event.job_id not in (self.deadline_job_id, self.interval_job_id):
            return
        now = self._clock().now()
        with self._lock:
            if (run := self._run) is None or self._sweeping:
                return
            self._sweeping = True
            # Woken before the clock reached the armed deadline: the scheduler's time and the clock disagree.
            early = event.job_id == self.deadline_job_id and self._armed_at is not None and now < self._armed_at
            self._armed_at = None
        interval = event.job_id == self.interval_job_id
        if run.pool is None:
            self._sweep(run, early, interval)
        else:
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the waker is stopping
                run.pool.submit(self._sweep, run, early, interval)

    def _sweep(self, run: _Run, early: bool, interval: bool = False) -> None:
        with self._lock:
            if self._run is not run or (target := self._target) is None:
                return
            self._sweeper = threading.get_ident()
        started = target.clock.now()
        deadline: datetime | None = None
        try:
            sweep = getattr(target, "sweep", None)
            if callable(sweep):  # it tells the next deadline, found by its own statements
                count, deadline = sweep(batch_size=self.batch_size)
            else:
                count = target.expire_sessions(batch_size=self.batch_size)
            with self._lock:
                self.sweeps, self.expired, self.last_error = self.sweeps + 1, self.expired + count, None
            if not callable(sweep):
                deadline = target.next_deadline()
            drop_keys = getattr(target, "drop_expired_keys", None)
            if interval and callable(drop_keys):  # the safety net also drops the expired idempotency keys
                drop_keys()
        except Exception as error:  # retried with backoff; the error is kept for inspection
            self.last_error = error
            logger.exception("sweep failed; retrying")
        finally:
            self._finish(run, started, deadline, early)

    def _finish(self, run: _Run, started: datetime, deadline: datetime | None, early: bool = False) -> None:
        """End a sweep of ``run`` begun at ``started`` (clock time) that found ``deadline``: arm the date job there,
        or at a deadline notified since if earlier; soon again, backing off, if it failed or left rows due."""
        now = self._clock().now()
        with self._lock:
            self._sweeper = None if self._sweeper == threading.get_ident() else self._sweeper
            if self._run is not run:  # stopped meanwhile
                return
            self._sweeping, failed = False, self.last_error is not None
            pending, self._pending = self._pending, None
            # A notified deadline may be a write committed after the sweep read; one due when it began is stale.
            if pending is not None and pending > started and (deadline is None or pending < deadline):
                deadline = pending
            if early and not failed:  # any date would be due at once for the scheduler: pause rather than spin
                deadline = None  # (the interval job and the next write wake the engine)
            elif failed or (deadline is not None and deadline <= started):
                # The store failed, or rows stayed due (another process holds them): retry, backing off.
                retry = now + self._retry
                self._retry = min(self._retry * 2, _RETRY_MAX, self.cleanup_interval)
                deadline = retry if failed or deadline is None else max(deadline, retry)
            else:
                self._retry = _RETRY_START
            self._arm(deadline)

    def _arm(self, deadline: datetime | None) -> None:
        """Arm the date job at ``deadline`` (``None``: paused). Called with the lock held, while running."""
        assert self._run is not None
        self._armed_at, run_at = deadline, None
        if deadline is not None:  # the scheduler's time at which the manager's clock reaches the deadline
            clock = self._clock()
            run_at = deadline if type(clock) is SystemClock else datetime.now(UTC) + (deadline - clock.now())
        self._run.scheduler.add_job(_job, DateTrigger(run_date=run_at or datetime.now(UTC), timezone=UTC),
                                    id=self.deadline_job_id, name="sessionflow deadline sweep",
                                    executor=self.executor_alias, replace_existing=True, next_run_time=run_at,
                                    **JOB_OPTIONS)

    def _clock(self) -> Clock:
        return self._target.clock if self._target is not None else SystemClock()

    def _new_scheduler(self) -> Any:
        if self._kind == "asyncio":
            from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

            loop = {} if self._event_loop is None else {"event_loop": self._event_loop}
            return AsyncIOScheduler(timezone=UTC, **loop)
        from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

        return BackgroundScheduler(timezone=UTC, daemon=True)

    def __repr__(self) -> str:
        state = "running" if self._run is not None else "stopped"
        armed = self._armed_at.isoformat() if self._armed_at is not None else None
        return f"ApschedulerWaker({state}, armed_at={armed}, interval={self.cleanup_interval})"
