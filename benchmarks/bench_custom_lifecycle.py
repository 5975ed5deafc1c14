"""A transition on a user-defined lifecycle next to one on the default lifecycle.

Both run through ``SessionManager`` with the same store: a session is created and driven through two
transitions (three writes), per write. The custom lifecycle has seven states, a compound guard (two
``cond`` and an ``unless``), a validator and three per-state timeouts, so its writes also compute the next
state's deadline; the default one is ``SessionLifecycle``. In memory and on SQLite (WAL, NORMAL).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from statemachine import State, StateMachine

from benchmarks.framework import Benchmark, Contender, Context, Section
from sessionflow import Session, SessionManager
from sessionflow.domain.definitions import LifecycleDefinition, StateTimeout

__all__ = ["BENCHMARK"]


def _has_worker(worker: str | None = None, **_: Any) -> bool:
    return bool(worker)


def _files_done(session: Session, **_: Any) -> bool:
    return session.progress.all_accounted


def _has_summary(session: Session, **_: Any) -> bool:
    return True


def _blocked(session: Session, **_: Any) -> bool:
    return False


def _check(approver: str | None = None, **_: Any) -> None:
    if approver is None:
        raise ValueError("no approver")


class _Job(StateMachine):
    queued = State(initial=True)
    running = State()
    paused = State()
    review = State()
    done = State(final=True)
    failed = State(final=True)
    cancelled = State(final=True)

    begin = queued.to(running, cond=_has_worker)
    pause = running.to(paused)
    resume = paused.to(running)
    submit = running.to(review, cond=[_files_done, _has_summary], unless=_blocked)
    approve = review.to(done, validators=[_check])
    give_up = queued.to(cancelled) | running.to(failed) | paused.to(failed) | review.to(failed)


JOBS = LifecycleDefinition("bench-jobs", 1, _Job, timeouts={
    "queued": StateTimeout("give_up", after=timedelta(minutes=10)),
    "running": StateTimeout("give_up", after=timedelta(hours=1)),
    "paused": StateTimeout("resume", after=timedelta(minutes=5)),
})


def run(ctx: Context) -> Section:
    section = Section(name="custom-lifecycle", title="A transition on a custom lifecycle", description=__doc__ or "")
    sessions = ctx.scale(1000, 100)
    rounds = ctx.scale(7, 2)
    folder = tempfile.TemporaryDirectory()
    urls = {"memory": None, "SQLite": f"sqlite:///{Path(folder.name) / 'custom.db'}"}

    def open_manager(where: str, lifecycle: LifecycleDefinition | None) -> SessionManager:
        url = urls[where]
        options: dict[str, Any] = {} if lifecycle is None else {"lifecycle": lifecycle}
        return SessionManager.in_memory(**options) if url is None else SessionManager.open(url, **options)

    def default_path(where: str) -> Any:
        def go(n: int) -> None:
            with open_manager(where, None) as mgr:
                for _ in range(n):
                    s = mgr.create(performer_id="bench")
                    mgr.start(s.id, performer_id="bench")
                    mgr.complete(s.id, performer_id="bench")
        return go

    def custom_path(where: str) -> Any:
        def go(n: int) -> None:
            with open_manager(where, JOBS) as mgr:
                for _ in range(n):
                    s = mgr.create(performer_id="bench")
                    mgr.send(s.id, "begin", worker="w", performer_id="bench")
                    mgr.send(s.id, "submit", performer_id="bench")
        return go

    try:
        for where in urls:
            contenders = [
                Contender(f"custom lifecycle, {where} (create/begin/submit)", "transition", custom_path(where),
                          ops_per_unit=3),
                Contender(f"default lifecycle, {where} (create/start/complete)", "transition", default_path(where),
                          ops_per_unit=3),
            ]
            ctx.log(f"  {where}: {sessions} sessions x {rounds} rounds")
            measured = ctx.measure(contenders, sessions, rounds)
            custom = section.add(measured[contenders[0].label])
            section.compare(custom, section.add(measured[contenders[1].label]), "latency")
    finally:
        folder.cleanup()
    section.notes.append("Both go through the same manager and store; the custom lifecycle's writes also compute "
                         "the deadline of the state they enter and record the event's arguments.")
    return section


BENCHMARK = Benchmark(name="custom-lifecycle", title="A transition on a custom lifecycle", run=run, order=15,
                      summary="a seven-state custom lifecycle vs the default session lifecycle, per write")
