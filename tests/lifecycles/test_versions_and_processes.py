"""Versioned definitions, unknown states, and a custom lifecycle driven by four processes at once."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from sessionflow import InvalidTransition, SessionManager, replay
from sessionflow.errors import UnknownState
from sessionflow.testing import ManualClock
from tests.conftest import MakeManager
from tests.lifecycles import jobs as jobs_module
from tests.lifecycles.jobs import JOBS_V1, JOBS_V2, register

register()


def test_sessions_keep_their_version_until_migrated(make_manager: MakeManager, clock: ManualClock) -> None:
    v1 = make_manager(clock=clock, lifecycle=JOBS_V1)
    old = v1.create(file_paths=[], metadata={"summary": "s"}, performer_id="u")
    v1.send(old.id, "begin", worker="w", performer_id="u")
    in_review = v1.send(old.id, "submit", performer_id="u")
    assert in_review.status == "review"

    v2 = make_manager(clock=clock, lifecycle="jobs", store_of=v1)  # the newest version: 2
    assert v2.definition is JOBS_V2
    new = v2.create(performer_id="u")
    assert (new.lifecycle, new.lifecycle_version) == ("jobs", 2)
    # The old session still runs under version 1's rules, whichever manager drives it.
    approved_path = v2.get(old.id)
    assert approved_path.lifecycle_version == 1
    with pytest.raises(InvalidTransition):
        v2.send(old.id, "checked", performer_id="u")  # a version-2 event

    migrated = v2.migrate(old.id, performer_id="ops")
    assert (migrated.lifecycle_version, migrated.status) == (2, "checking")  # review -> checking
    assert migrated.expires_at == clock.now() + timedelta(minutes=30)  # checking's timeout starts
    last = v2.history(old.id)[-1]
    assert (str(last.event), last.payload["from_version"], last.payload["to_version"]) == ("migrated", 1, 2)
    assert v2.send(old.id, "checked", performer_id="u").status == "approval"
    with pytest.raises(Exception, match="already runs version 2"):
        v2.migrate(old.id, performer_id="ops")
    assert replay(v2.history(old.id)) == v2.get(old.id)
    assert v2.verify() == []


def test_an_unknown_stored_state_is_a_clear_error(sql_url: str) -> None:
    with SessionManager.open(sql_url, lifecycle=JOBS_V1, cache_size=0) as manager:
        sid = manager.create(performer_id="u").id
        engine = create_engine(sql_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE sessions SET status = 'archived'"))
        engine.dispose()
        with pytest.raises(UnknownState) as info:
            manager.get(sid)
        assert (info.value.lifecycle, info.value.version, info.value.state) == ("jobs", 1, "archived")
        with pytest.raises(UnknownState):
            manager.send(sid, "begin", worker="w", performer_id="u")


def test_four_processes_drive_a_custom_lifecycle(sql_url: str) -> None:
    with SessionManager.open(sql_url, lifecycle=JOBS_V1) as manager:
        ids = [str(manager.create(performer_id="setup").id) for _ in range(6)]
        for sid in ids[:3]:
            manager.send(sid, "begin", worker="w0", performer_id="setup")
            manager.send(sid, "pause", performer_id="setup")
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(4) as pool:
        results = pool.starmap(jobs_module.drive, [(sql_url, ids, seed, start_at) for seed in range(4)])
    assert sum(r["ok"] for r in results) > 0
    assert sum(r["conflicts"] + r["refused"] for r in results) > 0
    with SessionManager.open(sql_url, lifecycle=JOBS_V1, cache_size=0) as manager:
        for sid in ids:
            history = manager.history(sid)
            assert [e.version for e in history] == list(range(1, len(history) + 1))
            assert replay(history) == manager.get(sid)
        assert manager.verify() == []
        # Far in the future every live job times out: a paused one resumes (and its running timeout
        # starts then), so a second sweep an hour later ends it; each gives up exactly once.
        far = datetime(2100, 1, 1, tzinfo=UTC)
        manager.expire_sessions(now=far)
        manager.expire_sessions(now=far + timedelta(hours=2))
        for sid in ids:
            session = manager.get(sid)
            history = manager.history(sid)
            assert session.status in {"cancelled", "failed"}
            assert [str(e.event) for e in history].count("gave_up") == 1
        assert manager.verify() == []
