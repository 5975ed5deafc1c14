"""A user-defined lifecycle (seven states, a compound guard, a validator, three per-state timeouts) runs with
the same guarantees as the default one, on every store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sessionflow import (
    EventType,
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    SessionManager,
    replay,
)
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry, StateTimeout
from sessionflow.testing import ManualClock
from tests.conftest import MakeManager
from tests.lifecycles.jobs import JOBS_V1, JobLifecycle, register

register()


@pytest.fixture
def jobs(make_manager: MakeManager, clock: ManualClock) -> SessionManager:
    return make_manager(clock=clock, lifecycle=JOBS_V1)


def _events(manager: SessionManager, sid: Any) -> list[tuple[str, str | None, str, str]]:
    return [(str(e.event), e.source_state and str(e.source_state), str(e.target_state), e.performer_id)
            for e in manager.history(sid)]


def test_a_job_runs_from_queued_to_done(jobs: SessionManager, clock: ManualClock) -> None:
    job = jobs.create(user_id="u1", file_paths=["a", "b"], performer_id="u1")
    assert (job.status, job.lifecycle, job.lifecycle_version) == ("queued", "jobs", 1)
    assert job.expires_at == clock.now() + timedelta(minutes=10)  # the queued state's timeout

    with pytest.raises(InvalidTransition, match="has_worker"):
        jobs.send(job.id, "begin", performer_id="u1")
    running = jobs.send(job.id, "begin", worker="w-7", performer_id="u1")
    assert running.status == "running"
    assert running.expires_at == clock.now() + timedelta(hours=1)

    paused = jobs.send(running.id, "pause", performer_id="u1")
    assert paused.expires_at == clock.now() + timedelta(minutes=5)
    running = jobs.send(paused.id, "resume", performer_id="u1")

    # The compound guard: every file accounted for AND a summary AND not blocked.
    with pytest.raises(InvalidTransition, match="files_done"):
        jobs.send(job.id, "submit", performer_id="u1")
    jobs.record_file(job.id, "a", performer_id="u1")
    jobs.record_file(job.id, "b", error="bad", performer_id="u1")
    with pytest.raises(InvalidTransition, match="has_summary"):
        jobs.send(job.id, "submit", performer_id="u1")
    jobs.update(job.id, metadata={"summary": "ok", "blocked": True}, performer_id="u1")
    with pytest.raises(InvalidTransition, match="blocked"):
        jobs.send(job.id, "submit", performer_id="u1")
    jobs.update(job.id, metadata={"summary": "ok"}, performer_id="u1")
    review = jobs.send(job.id, "submit", performer_id="u1")
    assert review.status == "review"
    assert review.expires_at is None  # review has no timeout

    before = len(jobs.history(job.id))
    with pytest.raises(InvalidTransition, match="not a reviewer"):
        jobs.send(job.id, "approve", approver="someone", performer_id="u1")
    assert len(jobs.history(job.id)) == before  # a refused event changes nothing

    done = jobs.send(job.id, "approve", approver="reviewer-1", performer_id="u1")
    assert done.status == "done"
    assert done.is_terminal
    assert done.closed_by == "u1"
    with pytest.raises(InvalidTransition, match="final state"):
        jobs.touch(job.id, performer_id="u1")

    history = jobs.history(job.id)
    assert [str(e.event) for e in history] == [
        "created", "begin", "pause", "resume", "file_recorded", "file_recorded", "updated", "updated",
        "submit", "approve"]
    assert history[-1].payload["args"] == {"approver": "reviewer-1"}
    assert replay(history) == jobs.get(job.id)
    assert jobs.verify() == []


def test_three_state_timeouts_fire_as_system(jobs: SessionManager, clock: ManualClock) -> None:
    queued = jobs.create(performer_id="u1")
    paused = jobs.create(performer_id="u1")
    jobs.send(paused.id, "begin", worker="w", performer_id="u1")
    jobs.send(paused.id, "pause", performer_id="u1")
    running = jobs.create(performer_id="u1")
    jobs.send(running.id, "begin", worker="w", performer_id="u1")

    clock.advance(timedelta(minutes=5))
    assert jobs.expire_sessions() == 1  # the paused job resumes after 5 minutes
    assert jobs.get(paused.id).status == "running"
    assert _events(jobs, paused.id)[-1] == ("resume", "paused", "running", "system")

    clock.advance(timedelta(minutes=5))
    assert jobs.get(queued.id).status == "cancelled"  # lazy: reading an overdue job fires its timeout once
    assert _events(jobs, queued.id)[-1] == ("gave_up", "queued", "cancelled", "system")

    clock.advance(timedelta(minutes=30))  # t = 40 min
    jobs.touch(running.id, performer_id="u1")  # a heartbeat restarts the running timeout: now t = 100
    clock.advance(timedelta(minutes=24))  # t = 64: the resumed job (running since t = 5) is still in time
    assert jobs.expire_sessions() == 0
    clock.advance(timedelta(minutes=2))  # t = 66
    assert jobs.expire_sessions() == 1
    assert jobs.get(paused.id).status == "failed"
    clock.advance(timedelta(minutes=33))  # t = 99: the touched job is still in time
    assert jobs.expire_sessions() == 0
    clock.advance(timedelta(minutes=2))  # t = 101
    assert jobs.expire_sessions() == 1
    failed = jobs.get(running.id)
    assert failed.status == "failed"
    assert failed.failure_reason == "no heartbeat"
    assert _events(jobs, running.id)[-1] == ("gave_up", "running", "failed", "system")
    assert jobs.expire_sessions() == 0
    for sid in (queued.id, paused.id, running.id):
        assert sum(1 for e in jobs.history(sid) if e.performer_id == "system") >= 1
        assert replay(jobs.history(sid)) == jobs.get(sid)
    assert jobs.verify() == []


def test_update_status_goes_through_the_machine(jobs: SessionManager) -> None:
    job = jobs.create(performer_id="u1")
    with pytest.raises(InvalidTransition, match="has_worker"):
        jobs.update(job.id, status="running", performer_id="u1")
    with pytest.raises(InvalidInput, match="unknown status"):
        jobs.update(job.id, status="in_progress", performer_id="u1")
    cancelled = jobs.update(job.id, status="cancelled", performer_id="u1")
    assert cancelled.status == "cancelled"
    assert str(jobs.history(job.id)[-1].event) == "gave_up"


def test_sessions_of_both_lifecycles_share_a_manager(jobs: SessionManager) -> None:
    job = jobs.create(performer_id="u1")
    plain = jobs.create(lifecycle="session", performer_id="u1")
    assert (plain.lifecycle, plain.status) == ("session", "pending")
    assert jobs.start(plain.id, performer_id="u1").status == "in_progress"
    with pytest.raises(InvalidTransition, match="unknown event 'start'"):
        jobs.start(job.id, performer_id="u1")
    assert {s.lifecycle for s in jobs.list()} == {"jobs", "session"}
    assert jobs.history(plain.id)[1].event is EventType.STARTED


def test_event_arguments_must_be_json(jobs: SessionManager) -> None:
    job = jobs.create(performer_id="u1")
    with pytest.raises(InvalidInput):
        jobs.send(job.id, "begin", worker=object(), performer_id="u1")
    assert len(jobs.history(job.id)) == 1


def test_definition_errors_are_clear() -> None:
    with pytest.raises(LifecycleDefinitionError, match="unknown state"):
        LifecycleDefinition("bad", 1, JobLifecycle, timeouts={"nowhere": StateTimeout("give_up")})
    with pytest.raises(LifecycleDefinitionError, match="final state"):
        LifecycleDefinition("bad", 1, JobLifecycle, timeouts={"done": StateTimeout("give_up")})
    with pytest.raises(LifecycleDefinitionError, match="no transition"):
        LifecycleDefinition("bad", 1, JobLifecycle, timeouts={"review": StateTimeout("resume")})
    with pytest.raises(LifecycleDefinitionError, match="invalid lifecycle name"):
        LifecycleDefinition("has space", 1, JobLifecycle)
    registry = LifecycleRegistry(JOBS_V1)
    with pytest.raises(LifecycleDefinitionError, match="already registered"):
        registry.register(LifecycleDefinition("jobs", 1, JobLifecycle))
    with pytest.raises(LifecycleDefinitionError, match="no lifecycle 'nope'"):
        registry.get("nope")
