"""``sessionflow migrate-store``: SQLite / PostgreSQL -> Redis and back, every session copied and verified."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionflow import SessionManager
from sessionflow.entrypoints.cli import app
from sessionflow.testing import ManualClock
from tests.support.backends import reset_postgres

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def populate(url: str) -> dict[str, list[str]]:
    """A few sessions in every state (one deleted); returns each one's event names."""
    clock = ManualClock(T0)
    with SessionManager.open(url, clock=clock) as mgr:
        a = mgr.create(user_id="u1", workspace_id="w", file_paths=["a.py"], metadata={"k": [1, 2]},
                       performer_id="u1", ttl=timedelta(minutes=1))
        mgr.start(a.id, performer_id="u1")
        mgr.record_file(a.id, "a.py", error="boom", performer_id="u1")
        mgr.add_note(a.id, file_path="a.py", memory_id="m", status="stored", performer_id="u1")
        mgr.complete(a.id, performer_id="u1")
        b = mgr.create(user_id="u2", performer_id="u2")
        mgr.fail(b.id, reason="no", performer_id="u2")
        c = mgr.create(performer_id="p", ttl=timedelta(minutes=1))
        d = mgr.create(performer_id="p")
        mgr.delete(d.id, performer_id="p")
        e = mgr.create(performer_id="p", ttl=timedelta(hours=5))
        clock.advance(timedelta(minutes=2))
        mgr.expire_sessions()
        return {str(s): [str(ev.event) for ev in mgr.history(s)] for s in (a.id, b.id, c.id, d.id, e.id)}


def run_migrate(source: str, target: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["migrate-store", "--from", source, "--to", target, "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def histories(url: str) -> dict[str, list[str]]:
    with SessionManager.open(url) as mgr:
        return {str(s): [str(e.event) for e in mgr.history(s)] for s in mgr.store.session_ids()}


def round_trip(sql_url: str, redis_url: str, back_url: str) -> None:
    made = populate(sql_url)
    there = run_migrate(sql_url, redis_url)
    assert there["sessions"] == 5
    assert there["events"] == sum(len(v) for v in made.values())
    assert there["verified"] is True
    assert there["differences"] == []
    assert histories(redis_url) == made
    with SessionManager.open(redis_url, clock=ManualClock(T0 + timedelta(minutes=3))) as mgr:
        assert mgr.count() == 4  # the deleted one is not counted, as on SQL
        assert mgr.verify() == []
        assert mgr.next_deadline() == T0 + timedelta(hours=5)
    back = run_migrate(redis_url, back_url)  # the rollback: a configuration change back to a SQL store
    assert back["verified"] is True
    assert back["sessions"] == 5
    assert histories(back_url) == made


def test_sqlite_to_redis_and_back(tmp_path: Path, clean_redis_url: str) -> None:
    round_trip(f"sqlite:///{tmp_path / 'a.db'}", clean_redis_url, f"sqlite:///{tmp_path / 'b.db'}")


@pytest.mark.postgres
def test_postgres_to_redis_and_back(tmp_path: Path, clean_redis_url: str, postgres_url: str) -> None:
    reset_postgres(postgres_url)
    source = f"sqlite:///{tmp_path / 'a.db'}"
    made = populate(source)
    assert run_migrate(source, postgres_url)["verified"] is True
    round_trip_target = run_migrate(postgres_url, clean_redis_url)
    assert round_trip_target["verified"] is True
    reset_postgres(postgres_url)
    assert run_migrate(clean_redis_url, postgres_url)["verified"] is True
    assert histories(postgres_url) == made


def test_the_target_must_be_empty(tmp_path: Path, clean_redis_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    populate(source)
    run_migrate(source, clean_redis_url)
    result = CliRunner().invoke(app, ["migrate-store", "--from", source, "--to", clean_redis_url])
    assert result.exit_code != 0
    assert "already holds sessions" in result.output
