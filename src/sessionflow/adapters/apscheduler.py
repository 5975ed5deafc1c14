"""``ApschedulerWaker``: wakes the engine at the earliest deadline, with APScheduler 3.

The deadlines live in the store (``expires_at``, indexed); APScheduler never owns a timeout. The waker keeps
exactly two jobs, whatever the number of sessions:

* ONE date job, armed at the earliest pending deadline (:meth:`SessionManager.next_deadline`). When it
  fires, the engine sweeps (:meth:`SessionManager.sweep`, which delivers the expired events to the
  subscribers), then the job is armed again at the next deadline: the one the sweep found, so a wake-up
  reads nothing more than the sweep's own statements (a target without ``sweep``: its ``next_deadline``).
  A write that sets an earlier deadline re-arms it at once (:meth:`notify_deadline`, called by the manager
  after each commit), so the waker never sleeps past a deadline this process wrote.
  With no live session the job stays in the scheduler, paused.
* ONE interval job every ``cleanup_interval`` as a safety net: it asks for a sweep now. It catches anything
  a lost wake-up or a lost notice would miss.

Deadlines written by other processes reach the waker through a change watcher
(:class:`~sessionflow.application.watching.ChangeWatcher`: PostgreSQL's ``NOTIFY``, SQLite's
``PRAGMA data_version``), given to the constructor or offered by the manager when it starts the waker
(:meth:`ApschedulerWaker.follow`). A ``"deadline"`` notice is :meth:`notify_deadline`; a ``"changed"``
notice reads the store's next deadline and re-arms if it is earlier; ``"events"`` notices are ignored.

Both jobs use ``misfire_grace_time=None`` (a late wake-up still runs: APScheduler's default of one second
silently drops it), ``coalesce=True`` and ``max_instances=1``.

Where the sweep runs: on a ``BackgroundScheduler`` the waker created itself (the default), on the scheduler's
own thread, which has nothing else to do — no hand-off to another thread per wake-up, which matters when
other Python threads keep the interpreter busy (each hand-off then waits for the GIL, up to the switch
interval). The jobs themselves only mark the wake-up: the sweep and the re-arm run when APScheduler reports
the job submitted, after it released its job-store lock, so the waker never holds its own lock while
waiting for the scheduler's (writers re-arming the job take them in the other order). On a scheduler given
to the waker, and with :meth:`ApschedulerWaker.for_asyncio`, sweeps run on the waker's own one-thread
executor instead, so they never block the caller's scheduler or the event loop.

:meth:`start` first sweeps synchronously — sessions that fell due while nothing ran expire before it returns
(restart catch-up) — then arms the next deadline. :meth:`stop` removes the jobs and joins the waker's threads.

Exactly-once expiry does not depend on the waker: the sweep claims overdue rows with a versioned
compare-and-set, so any number of wakers, in any number of processes, may sweep one database.

Longer than 400 lines: one class, because its state (the armed deadline, the deadline notified meanwhile,
the firing and sweeping marks) is guarded by one lock that every method takes in one order with
APScheduler's own; split across modules, that order would be spread with it. A third of the module is this
docstring and the methods' docstrings.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol
from uuid import uuid4

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
)
from apscheduler.executors.debug import DebugExecutor  # type: ignore[import-untyped]
from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.schedulers.base import BaseScheduler  # type: ignore[import-untyped]
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
    """What the waker drives: a :class:`~sessionflow.SessionManager` (or anything shaped like one)."""

    @property
    def clock(self) -> Clock: ...

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int: ...

    def next_deadline(self) -> datetime | None: ...


#: A target may also offer ``sweep(batch_size=...) -> (expired, next_deadline)`` (:meth:`SessionManager.sweep`):
#: the waker then re-arms at the deadline the sweep found, with no read of its own.


class ApschedulerWaker:
    """Wakes a manager at its deadlines with one APScheduler date job and one safety-net interval job.

    Args:
        target: the manager to drive; may be given later with :meth:`bind` (``SessionManager.start_timeouts``
            binds it).
        cleanup_interval: period of the safety-net sweep (default five minutes, at least one second).
        scheduler: an APScheduler 3 scheduler to add the two jobs to. The waker starts it if it is not
            running, and on :meth:`stop` removes only its own jobs, listener and executor: the caller owns
            it. By default the waker creates, starts and shuts down its own ``BackgroundScheduler``
            (``kind="asyncio"``: its own ``AsyncIOScheduler`` on the running event loop).
        kind: ``"background"`` (a scheduler thread) or ``"asyncio"`` (timers on an event loop); only used
            when the waker creates the scheduler.
        batch_size: sessions expired per transaction in a sweep.
        watcher: a change watcher reporting writes of other processes (see :meth:`follow`); by default the
            one the manager offers when it starts the waker. The waker subscribes while it runs and starts the
            watcher if needed, but never stops it: whoever built it does.

    The waker's methods are thread-safe. :meth:`notify_deadline` is cheap: a comparison, and a re-arm only
    when the deadline is earlier than the armed one.
    """

    def __init__(
        self,
        target: SweepTarget | None = None,
        *,
        cleanup_interval: timedelta = timedelta(minutes=5),
        scheduler: Any = None,
        kind: Literal["background", "asyncio"] = "background",
        event_loop: Any = None,
        batch_size: int = 1000,
        watcher: ChangeWatcher | None = None,
    ) -> None:
        if not isinstance(cleanup_interval, timedelta) or cleanup_interval < _MIN_INTERVAL:
            raise InvalidInput("cleanup_interval", f"must be a timedelta of at least {_MIN_INTERVAL}")
        if kind not in ("background", "asyncio"):
            raise InvalidInput("kind", "must be 'background' or 'asyncio'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise InvalidInput("batch_size", "must be an integer between 1 and 100000")
        self._target = target
        self.cleanup_interval = cleanup_interval
        self.batch_size = batch_size
        self._given_scheduler = scheduler
        self._kind = kind
        self._event_loop = event_loop
        suffix = uuid4().hex[:12]
        #: The ids of the two jobs and of the executor they run on (unique per waker).
        self.deadline_job_id = f"sessionflow-deadline-{suffix}"
        self.interval_job_id = f"sessionflow-sweep-{suffix}"
        self.executor_alias = f"sessionflow-{suffix}"
        self._lock = threading.RLock()  # state and arming; never held while the scheduler holds its own lock
        self._marks_lock = threading.Lock()
        self._lifecycle_lock = threading.RLock()  # one start or stop at a time
        self._local = threading.local()
        self._scheduler: Any = None
        self._executor: Any = None
        self._owns_scheduler = False
        self._inline = False  # sweeps run on the scheduler's own thread (see the module's docstring)
        self._running = False
        self._sweeping = False
        self._armed_at: datetime | None = None  # the deadline (clock time) the date job is armed at
        self._pending: datetime | None = None  # the earliest deadline notified since the last re-arm began
        # Of the date job's current firing: APScheduler reported it submitted / its run finished.
        self._fired = False
        self._finished = False
        self._retry = _RETRY_START
        self._sweep_started: datetime | None = None  # clock time at the start of the last sweep
        # The next deadline the last sweep found (a 1-tuple; None: it found none to give), for _rearm.
        self._swept: tuple[datetime | None] | None = None
        self._early = False  # the last wake-up came before the clock reached the armed deadline
        self._sweeping_since = 0.0  # time.monotonic() when the current sweep began
        self.sweeps = 0
        self.expired = 0
        self.last_error: BaseException | None = None
        self._watcher = watcher
        self._offered: Callable[[], ChangeWatcher | None] | None = None  # the manager's watcher, built on start
        self._following: ChangeWatcher | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: How many ``"deadline"`` and ``"changed"`` notices the waker received while running.
        self.notices = 0

    @classmethod
    def for_asyncio(cls, target: SweepTarget | None = None, *, event_loop: Any = None,
                    **options: Any) -> ApschedulerWaker:
        """A waker on its own ``AsyncIOScheduler`` (for asyncio hosts: FastAPI, aiohttp, ...).

        Start it from the event loop's thread (or pass ``event_loop``). Its timers run on the loop; its
        sweeps run on the waker's own worker thread, so they never block the loop.
        """
        return cls(target, kind="asyncio", event_loop=event_loop, **options)

    # ------------------------------------------------------------------ introspection

    @property
    def running(self) -> bool:
        return self._running

    @property
    def scheduler(self) -> Any:
        """The APScheduler scheduler in use (``None`` before :meth:`start`)."""
        return self._scheduler

    @property
    def sweeping(self) -> bool:
        """True from the date job's firing until it is armed again (meanwhile APScheduler holds one job)."""
        return self._sweeping

    @property
    def armed_at(self) -> datetime | None:
        """The deadline the date job is armed at (``None`` when it is paused or firing)."""
        return self._armed_at

    @property
    def watcher(self) -> ChangeWatcher | None:
        """The change watcher the waker follows while it runs (``None``: none, or not started)."""
        return self._following

    def follow(self, watcher: ChangeWatcher | Callable[[], ChangeWatcher | None] | None) -> None:
        """Offer the watcher to follow from the next :meth:`start` (one given to the constructor wins).

        ``watcher`` may be a function building it, called at start: ``SessionManager.start_timeouts`` offers
        the manager's this way, so a waker that is never started builds nothing.
        """
        if watcher is None or isinstance(watcher, ChangeWatcher):
            self._offered = (lambda: watcher)
        else:
            self._offered = watcher

    def bind(self, target: SweepTarget) -> None:
        """Drive ``target``. Raises :class:`~sessionflow.errors.InvalidInput` while running on another one."""
        with self._lock:
            if self._running and target is not self._target:
                raise InvalidInput("waker", "is running for another manager; stop it first")
            self._target = target

    # ------------------------------------------------------------------ the Waker protocol

    def start(self) -> None:
        """Sweep once now (restart catch-up), then add the two jobs and start waking. Idempotent.

        The catch-up sweep runs in the calling thread: when ``start`` returns, every session that fell due
        while nothing ran has been expired. Its errors (e.g. :class:`~sessionflow.errors.StoreError`)
        propagate and nothing is started.
        """
        with self._lifecycle_lock:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            target = self._target
            if target is None:
                raise InvalidInput("waker", "has no manager to drive: call bind(manager) first")
        self._sweep_started = target.clock.now()
        expired = target.expire_sessions(batch_size=self.batch_size)
        scheduler = self._given_scheduler
        owns = scheduler is None
        if owns:
            scheduler = self._new_scheduler()
        inline = owns and self._kind == "background"
        # Inline: the jobs run on the scheduler's thread (they only mark the wake-up; see _on_event).
        executor = DebugExecutor() if inline else ThreadPoolExecutor(
            max_workers=1, pool_kwargs={"thread_name_prefix": "sessionflow-waker"})
        scheduler.add_executor(executor, self.executor_alias)
        with self._lock:
            self._scheduler, self._executor, self._owns_scheduler = scheduler, executor, owns
            self._inline = inline
            self._running, self._sweeping, self._armed_at, self._pending = True, False, None, None
            self._swept = None
            self._fired = self._finished = False
            self._retry = _RETRY_START
            self.sweeps += 1
            self.expired += expired
        try:
            scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
            scheduler.add_job(self._interval_job, IntervalTrigger(seconds=self.cleanup_interval.total_seconds(),
                                                                 timezone=UTC),
                              id=self.interval_job_id, name="sessionflow safety-net sweep",
                              executor=self.executor_alias, replace_existing=True, **JOB_OPTIONS)
            self._add_deadline_job(None)
            if not scheduler.running:
                scheduler.start()
            self._subscribe()  # before the first read of the store: a later write is then not missed
            self._rearm()
        except BaseException:
            self._stop()
            raise
        logger.debug("waker started (catch-up sweep expired %d sessions)", expired)

    def stop(self) -> None:
        """Remove the jobs and join the waker's threads (waiting for a sweep in progress). Idempotent.

        A scheduler the waker created is shut down; one given to it is left running without the waker's
        jobs, listener and executor.
        """
        if getattr(self._local, "in_job", False):
            # Called from inside a sweep (a subscriber): if another thread is stopping the waker, it is
            # waiting for this sweep to end, so leave it to that thread rather than wait for it.
            if not self._lifecycle_lock.acquire(blocking=False):
                return
            try:
                self._stop()
            finally:
                self._lifecycle_lock.release()
            return
        with self._lifecycle_lock:
            self._stop()

    def _stop(self) -> None:
        with self._lock:
            if self._scheduler is None:
                return
            scheduler, executor, owns = self._scheduler, self._executor, self._owns_scheduler
            self._running = False
            self._scheduler = self._executor = None
            self._armed_at = self._pending = None
            unsubscribe, self._unsubscribe, self._following = self._unsubscribe, None, None
        if unsubscribe is not None:
            unsubscribe()
        in_worker = bool(getattr(self._local, "in_job", False))
        inline = self._inline
        scheduler.remove_listener(self._on_event)
        # Remove the jobs first: each removal takes the scheduler's job-store lock, so a wake-up being
        # processed finishes before the shutdown begins (APScheduler's shutdown marks the scheduler stopped
        # before taking that lock; a date job fired at that moment would make its thread fail).
        for job_id in (self.deadline_job_id, self.interval_job_id):
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(job_id)
        if owns:
            if scheduler.running:
                if self._kind == "asyncio":
                    # Finishes on the loop (our threads are joined below); RuntimeError: the loop is closed.
                    with contextlib.suppress(RuntimeError):
                        scheduler.shutdown(wait=False)
                elif inline and in_worker:
                    # From a sweep on the scheduler's own thread: stop it without joining that very thread
                    # (BackgroundScheduler.shutdown would); it ends as soon as this wake-up returns.
                    BaseScheduler.shutdown(scheduler, wait=False)
                else:
                    scheduler.shutdown(wait=not in_worker)
        else:
            with contextlib.suppress(KeyError):
                scheduler.remove_executor(self.executor_alias, shutdown=False)
        executor.shutdown(wait=not in_worker)
        logger.debug("waker stopped")

    def notify_deadline(self, deadline: datetime) -> None:
        """A write set ``deadline``: re-arm the date job if it is earlier than the armed one."""
        if not self._running:
            return
        with self._lock:
            if not self._running:
                return
            if self._pending is None or deadline < self._pending:
                self._pending = deadline
            if self._sweeping:
                return  # the sweep in progress re-arms when it ends, counting this deadline
            if self._armed_at is None or deadline < self._armed_at:
                self._arm_locked(deadline)

    def _subscribe(self) -> None:
        watcher = self._watcher
        if watcher is None and self._offered is not None:
            watcher = self._offered()
        if watcher is None:
            return
        unsubscribe = watcher.subscribe(self._on_notice)
        with self._lock:
            self._following, self._unsubscribe = watcher, unsubscribe
        watcher.start()

    def _on_notice(self, notice: Notice) -> None:
        """A change watcher saw a write (of any process): re-arm if it set an earlier deadline."""
        if not self._running or notice.kind == "events":
            return
        self.notices += 1
        deadline = notice.deadline
        if notice.kind != "deadline" or deadline is None:
            target = self._target
            if target is None:
                return
            try:
                deadline = target.next_deadline()
            except Exception:  # the safety net and the next notice will try again
                if self._running:  # (a store closed under a stopping waker is no news)
                    logger.exception("could not read the next deadline after a change")
                return
            if deadline is None:
                return
        self.notify_deadline(deadline)

    def wakeup(self) -> None:
        """Ask for a sweep now (in the background), e.g. after moving a frozen clock in a test."""
        with self._lock:
            if not self._running:
                return
            if self._sweeping:
                # A sweep in progress re-arms when it ends. One "in progress" for longer than the safety-net
                # interval has lost its end (it cannot happen with APScheduler 3.11, but a stuck waker would
                # be silent): arm anyway.
                if time.monotonic() - self._sweeping_since < self.cleanup_interval.total_seconds():
                    return
                logger.warning("a sweep started %.0f s ago never reported its end; waking up anyway",
                               time.monotonic() - self._sweeping_since)
            self._arm_locked(self._target_clock().now())

    # ------------------------------------------------------------------ jobs and events

    def _deadline_job(self) -> None:
        """The date job. Inline, it only marks the wake-up (it runs under the scheduler's job-store lock):
        the sweep runs from :meth:`_on_event`. On an executor thread, it sweeps."""
        if not self._inline:
            self._on_deadline()

    def _interval_job(self) -> None:
        """The safety-net job (inline, the wake-up happens from :meth:`_on_event`, outside the scheduler's lock)."""
        if not self._inline:
            self._on_interval()

    def _on_deadline(self) -> None:
        """A deadline came: sweep. The date job is armed again once the sweep is over."""
        with self._lock:
            if not self._running:
                return
            self._sweeping = True
            self._sweeping_since = time.monotonic()
            # Woken before the manager's clock reached the deadline? (See _rearm.)
            self._early = self._armed_at is not None and self._target_clock().now() < self._armed_at
            self._armed_at = None
            # Deadlines notified from now on may be missing from what the sweep reads: _rearm counts them.
            self._pending = None
            self._swept = None
        self._local.in_job = True
        try:
            self._sweep()
        finally:
            self._local.in_job = False

    def _on_interval(self) -> None:
        """The safety-net job: ask for a sweep now (unless one is already running)."""
        self.wakeup()

    def _sweep(self) -> None:
        target = self._target
        if target is None:
            return
        self._sweep_started = target.clock.now()
        sweep = getattr(target, "sweep", None)
        swept: tuple[datetime | None] | None = None
        try:
            if callable(sweep):
                # The sweep tells the next deadline itself (found by its own statements): no read before
                # re-arming, so a wake-up costs only the sweep's few database calls.
                count, deadline = sweep(batch_size=self.batch_size)
                swept = (deadline,)
            else:
                count = target.expire_sessions(batch_size=self.batch_size)
        except Exception as error:  # a failed sweep is retried with backoff; the error is kept for inspection
            self.last_error = error
            logger.exception("sweep failed; retrying")
            return
        with self._lock:
            self.sweeps += 1
            self.expired += count
            self.last_error = None
            self._swept = swept

    def _on_event(self, event: Any) -> None:
        """Re-arm after the date job's run, once APScheduler has both removed the fired job (the
        ``submitted`` event is dispatched after that) and released its instance (``executed``/``error``).
        The two events come in either order; re-arming before both would lose the new job. Inline, this is
        also where the sweep runs: on the scheduler's thread, with no scheduler lock held."""
        try:
            if event.job_id == self.interval_job_id:
                if self._inline and event.code == EVENT_JOB_SUBMITTED:
                    self._on_interval()
                return
            if event.job_id != self.deadline_job_id:
                return
            with self._marks_lock:
                if event.code == EVENT_JOB_SUBMITTED:
                    self._fired = True
                else:
                    self._finished = True
                ready = self._fired and self._finished
                if ready:
                    self._fired = self._finished = False
            if ready:
                if self._inline:
                    self._on_deadline()
                self._rearm()
        except Exception:  # never let a listener error escape into APScheduler
            logger.exception("could not re-arm the deadline job")

    # ------------------------------------------------------------------ arming

    def _rearm(self) -> None:
        """Arm the date job at the earliest deadline: the one the sweep found (else the store's), or one
        notified since the sweep began (or while the store was read)."""
        with self._lock:
            if not self._running:
                return
            swept, self._swept = self._swept, None
            if swept is None:
                self._pending = None  # the store is read below: deadlines notified from now on count
            target = self._target
            failed = self.last_error is not None
        assert target is not None
        deadline: datetime | None = None
        if swept is not None:
            deadline = swept[0]
        else:
            try:
                deadline = target.next_deadline()
            except Exception as error:
                self.last_error = error
                failed = True
                logger.exception("could not read the next deadline; retrying")
        with self._lock:
            if not self._running:
                return
            self._sweeping = False
            swept_at = self._sweep_started
            pending = self._pending
            # A deadline notified since the sweep began (or while the store was read) may belong to a write
            # committed after that read (earlier writes are in it): it counts. One at or before the sweep is
            # stale.
            if (pending is not None and (swept_at is None or pending > swept_at)
                    and (deadline is None or pending < deadline)):
                deadline = pending
            early, self._early = self._early, False
            if early and not failed:
                # Woken before the clock reached the deadline: the scheduler's time and the clock disagree
                # (a clock frozen by freezegun while the scheduler thread reads real time, ...). Any date
                # would be due at once for the scheduler: pause the date job rather than spin; the interval
                # job and the next write wake the engine again.
                deadline = None
            elif failed or (deadline is not None and swept_at is not None and deadline <= swept_at):
                # Overdue already when the sweep began, yet still live (another process holds those rows),
                # or the store failed: try again soon, backing off, not spinning.
                retry = self._target_clock().now() + self._retry
                self._retry = min(self._retry * 2, _RETRY_MAX, self.cleanup_interval)
                deadline = retry if deadline is None or failed else max(deadline, retry)
            else:
                self._retry = _RETRY_START
            self._arm_locked(deadline)

    def _arm_locked(self, deadline: datetime | None) -> None:
        self._armed_at = deadline
        self._add_deadline_job(deadline)

    def _add_deadline_job(self, deadline: datetime | None) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        run_at = None if deadline is None else self._run_date(deadline)
        scheduler.add_job(self._deadline_job, DateTrigger(run_date=run_at or datetime.now(UTC), timezone=UTC),
                          id=self.deadline_job_id, name="sessionflow deadline sweep",
                          executor=self.executor_alias, replace_existing=True, next_run_time=run_at,
                          **JOB_OPTIONS)

    def _target_clock(self) -> Clock:
        target = self._target
        return target.clock if target is not None else SystemClock()

    def _run_date(self, deadline: datetime) -> datetime:
        """The scheduler's time at which the manager's clock reaches ``deadline``: the deadline itself on
        the system clock (which the scheduler reads too), else now plus the time left on the clock."""
        clock = self._target_clock()
        if type(clock) is SystemClock:
            return deadline
        return datetime.now(UTC) + (deadline - clock.now())

    def _new_scheduler(self) -> Any:
        if self._kind == "asyncio":
            from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

            options: dict[str, Any] = {"timezone": UTC}
            if self._event_loop is not None:
                options["event_loop"] = self._event_loop
            return AsyncIOScheduler(**options)
        from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

        return BackgroundScheduler(timezone=UTC, daemon=True)

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        armed = self._armed_at.isoformat() if self._armed_at is not None else None
        return f"ApschedulerWaker({state}, armed_at={armed}, interval={self.cleanup_interval})"
