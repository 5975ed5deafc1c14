"""After a mixed workload, every stored session equals the replay of its history."""

from __future__ import annotations

import random
from datetime import timedelta
from uuid import UUID

from sessionflow import SessionflowError, SessionManager, replay
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager


def one_operation(mgr: SessionManager, clock: ManualClock, rng: random.Random, sid: UUID, step: int) -> None:
    path = f"f{rng.randint(0, 3)}.py"
    kind = rng.randrange(13)
    if kind == 0:
        mgr.start(sid, performer_id="p")
    elif kind == 1:
        mgr.record_file(sid, path, error=rng.choice([None, "bad"]), performer_id="p")
    elif kind == 2:
        mgr.add_note(sid, file_path=path, memory_id="m", status="ok", performer_id="p")
    elif kind == 3:
        mgr.touch(sid, performer_id="p")
    elif kind == 4:
        mgr.update(sid, current_file=path, metadata={"n": step}, performer_id="p")
    elif kind == 5:
        mgr.update(sid, status=rng.choice(["in_progress", "completed", "failed"]), reason="r", performer_id="p")
    elif kind == 6:
        mgr.complete(sid, performer_id="p")
    elif kind == 7:
        mgr.fail(sid, reason="r", performer_id="p")
    elif kind == 8:
        mgr.expire(sid)
    elif kind == 9:
        mgr.get(sid)
    elif kind == 10:
        if rng.random() < 0.2:
            mgr.delete(sid, performer_id="p")
    elif kind == 11:
        clock.advance(timedelta(seconds=rng.choice([1, 20, 90])))
    else:
        mgr.expire_sessions()


class TestProjection(ContractSuite):
    """Projection equals replay."""

    def test_replay_equals_the_projection_after_a_mixed_workload(self, make_manager: MakeManager,
                                                                 clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, default_ttl=timedelta(minutes=5), sliding=True)
        rng = random.Random(20300101)
        ids: list[UUID] = []
        refusals = 0
        for step in range(300):
            if not ids or rng.random() < 0.15:
                files = [f"f{i}.py" for i in range(rng.randint(0, 3))]
                ids.append(mgr.create(performer_id="p", user_id=rng.choice(["a", "b", None]), file_paths=files,
                                      metadata={"step": step}, ttl=timedelta(seconds=rng.choice([30, 120, 600]))).id)
                continue
            sid = rng.choice(ids)
            try:
                one_operation(mgr, clock, rng, sid, step)
            except SessionflowError:
                refusals += 1
        assert refusals > 0
        stored_ids = mgr.store.session_ids()
        assert set(stored_ids) == set(ids)
        live = 0
        for sid in stored_ids:
            history = mgr.history(sid)
            assert [e.version for e in history] == list(range(1, len(history) + 1))
            stored = mgr.store.get(sid)
            assert stored is not None
            assert replay(history) == stored
            if stored.deleted_at is None:
                live += 1
                got = mgr.get(sid)
                assert got == replay(mgr.history(sid))
        assert live == mgr.count()
        statuses = {s.status for s in mgr.list(limit=1000)}
        assert len(statuses) >= 3  # the workload reached several states
