"""A job lifecycle used by the lifecycle tests: seven states, a compound guard, a validator and three
per-state timeouts. Importable, so spawned worker processes register the same definition."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from statemachine import State, StateMachine

from sessionflow import Session
from sessionflow.domain.definitions import LifecycleDefinition, StateTimeout, default_registry


def has_worker(worker: str | None = None, **_: Any) -> bool:
    """A job starts only on a named worker."""
    return bool(worker)


def files_done(session: Session, **_: Any) -> bool:
    """Every file of the job has an outcome."""
    return session.progress.all_accounted


def has_summary(session: Session, **_: Any) -> bool:
    """The job's metadata carries a summary."""
    return bool(session.metadata.get("summary"))


def blocked(session: Session, **_: Any) -> bool:
    """The job is marked blocked in its metadata."""
    return bool(session.metadata.get("blocked"))


def check_approver(approver: str | None = None, **_: Any) -> None:
    """Only a reviewer may approve."""
    if not approver or not approver.startswith("reviewer-"):
        raise ValueError(f"{approver!r} is not a reviewer")


class JobLifecycle(StateMachine):
    """queued → running ⇄ paused; running → review → done | running; queued → cancelled; … → failed."""

    queued = State(initial=True)
    running = State()
    paused = State()
    review = State()
    done = State(final=True)
    failed = State(final=True)
    cancelled = State(final=True)

    begin = queued.to(running, cond=has_worker)
    pause = running.to(paused)
    resume = paused.to(running)
    submit = running.to(review, cond=[files_done, has_summary], unless=blocked)  # a compound guard
    approve = review.to(done, validators=[check_approver])
    reject = review.to(running)
    give_up = queued.to(cancelled) | running.to(failed) | paused.to(failed) | review.to(failed)


JOB_TIMEOUTS = {
    "queued": StateTimeout("give_up", after=timedelta(minutes=10)),
    "running": StateTimeout("give_up", after=timedelta(hours=1), args={"reason": "no heartbeat"}),
    "paused": StateTimeout("resume", after=timedelta(minutes=5)),
}

JOBS_V1 = LifecycleDefinition("jobs", 1, JobLifecycle, timeouts=JOB_TIMEOUTS,
                              event_names={"give_up": "gave_up"})


class JobLifecycleV2(StateMachine):
    """Version 2: ``review`` is split into ``checking`` and a separate ``approval`` step."""

    queued = State(initial=True)
    running = State()
    paused = State()
    checking = State()
    approval = State()
    done = State(final=True)
    failed = State(final=True)
    cancelled = State(final=True)

    begin = queued.to(running, cond=has_worker)
    pause = running.to(paused)
    resume = paused.to(running)
    submit = running.to(checking, cond=[files_done, has_summary], unless=blocked)
    checked = checking.to(approval)
    approve = approval.to(done, validators=[check_approver])
    reject = checking.to(running) | approval.to(running)
    give_up = (queued.to(cancelled) | running.to(failed) | paused.to(failed) | checking.to(failed)
               | approval.to(failed))


JOBS_V2 = LifecycleDefinition(
    "jobs", 2, JobLifecycleV2,
    timeouts={**JOB_TIMEOUTS, "checking": StateTimeout("give_up", after=timedelta(minutes=30))},
    event_names={"give_up": "gave_up"},
    migrations={1: {"review": "checking"}},
)


def register() -> None:
    """Register both versions in the process-wide registry (idempotent)."""
    registry = default_registry()
    registry.register(JOBS_V1)
    registry.register(JOBS_V2)


def drive(url: str, session_ids: list[str], seed: int, start_at: float) -> dict[str, int]:
    """Run in a spawned process: push the shared jobs forward and sweep, counting conflicts and sweeps."""
    import random
    import time
    from uuid import UUID

    from sessionflow import ConcurrencyConflict, InvalidTransition, SessionManager

    register()
    rng = random.Random(seed)
    counts = {"ok": 0, "conflicts": 0, "refused": 0, "expired": 0}
    with SessionManager.open(url, migrate=False, lifecycle=JOBS_V1) as manager:
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(80):
            sid = UUID(rng.choice(session_ids))
            event = rng.choice(["begin", "pause", "resume", "touch", "sweep"])
            try:
                if event == "sweep":
                    counts["expired"] += manager.expire_sessions()
                    continue
                if event == "touch":
                    manager.touch(sid, performer_id=f"p{seed}")
                else:
                    manager.send(sid, event, worker=f"w{seed}", performer_id=f"p{seed}")
                counts["ok"] += 1
            except ConcurrencyConflict:
                counts["conflicts"] += 1
            except InvalidTransition:
                counts["refused"] += 1
    return counts
