"""``sessionflow migrate-store``: the sessions a target refuses are skipped and listed (exit 6), and ``--resume``
copies what is missing from a target that already holds part of the source.

PostgreSQL refuses a NUL character in text and in JSON, which an SQLite database written by an older version may
hold. The source's NULs are written into the SQLite file directly (the library refuses them on new writes).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sessionflow import SessionManager
from sessionflow.application.ports import Change
from sessionflow.bootstrap import create_store
from sessionflow.entrypoints.cli import app
from sessionflow.testing import ManualClock
from tests.support.backends import reset_postgres

pytestmark = pytest.mark.postgres

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MARK = "NULMARK"


def populate(path: Path) -> tuple[list[str], set[str]]:
    """Eleven sessions in every state; two of them hold a NUL (one in its metadata, one in its failure reason).
    Returns every session id, and the ids of those holding a NUL."""
    url = f"sqlite:///{path}"
    ids: list[str] = []
    with SessionManager.open(url, clock=ManualClock(T0)) as mgr:
        for i in range(9):
            s = mgr.create(user_id=f"u{i % 3}", file_paths=["a.py"], performer_id="p", ttl=timedelta(hours=1))
            if i % 3 == 1:
                mgr.start(s.id, performer_id="p")
                mgr.record_file(s.id, "a.py", performer_id="p")
                mgr.complete(s.id, performer_id="p")
            elif i % 3 == 2:
                mgr.delete(s.id, performer_id="p")
            ids.append(str(s.id))
        in_metadata = mgr.create(user_id="u1", metadata={"note": f"x{MARK}y"}, performer_id="p")
        in_reason = mgr.fail(mgr.create(performer_id="p").id, reason=f"bad{MARK}", performer_id="p")
    ids += [str(in_metadata.id), str(in_reason.id)]
    with sqlite3.connect(path) as db:  # the JSON escape in JSON documents, the character itself in text columns
        db.execute("UPDATE sessions SET data = replace(data, ?, ?)", (MARK, "\\u0000"))
        db.execute("UPDATE session_events SET payload = replace(payload, ?, ?)", (MARK, "\\u0000"))
        db.execute("UPDATE sessions SET failure_reason = replace(failure_reason, ?, ?)", (MARK, "\x00"))
    with SessionManager.open(url) as mgr:  # the source really holds them
        assert mgr.get(in_metadata.id).metadata == {"note": "x\x00y"}
        assert mgr.get(in_reason.id).failure_reason == "bad\x00"
    return ids, {str(in_metadata.id), str(in_reason.id)}


def remove_nuls(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE sessions SET data = replace(data, ?, '?')", ("\\u0000",))
        db.execute("UPDATE session_events SET payload = replace(payload, ?, '?')", ("\\u0000",))
        rows = db.execute("SELECT id, failure_reason FROM sessions WHERE failure_reason IS NOT NULL").fetchall()
        for sid, reason in rows:  # (in Python: SQLite's replace() stops at a NUL)
            db.execute("UPDATE sessions SET failure_reason = ? WHERE id = ?", (reason.replace("\x00", "?"), sid))


def migrate(source: str, target: str, *extra: str) -> Result:
    return CliRunner().invoke(app, ["migrate-store", "--from", source, "--to", target, *extra])


def histories(url: str) -> dict[str, list[tuple[int, str, str]]]:
    with SessionManager.open(url) as mgr:
        return {str(sid): [(e.version, str(e.event), str(e.record_id)) for e in mgr.history(sid)]
                for sid in mgr.store.session_ids()}


@pytest.fixture
def target(postgres_url: str) -> str:
    reset_postgres(postgres_url)
    return postgres_url


def test_the_sessions_the_target_refuses_are_listed_and_the_others_copied(tmp_path: Path, target: str) -> None:
    ids, refused = populate(tmp_path / "source.db")
    source = f"sqlite:///{tmp_path / 'source.db'}"
    result = migrate(source, target, "--json")
    assert result.exit_code == 6, result.output
    report = json.loads(result.stdout)
    assert report["sessions"] == 9
    assert report["verified"] is True
    assert report["differences"] == []
    assert report["complete"] is False
    assert {item["session_id"] for item in report["skipped"]} == refused
    assert all("NUL" in item["reason"] or "\\u0000" in item["reason"] for item in report["skipped"]), report
    copied = histories(target)
    assert set(copied) == set(ids) - refused
    assert {sid: events for sid, events in histories(source).items() if sid not in refused} == copied

    human = migrate(source, f"{target}", "--resume")  # the same refusals again, listed on stdout, one each
    assert human.exit_code == 6, human.output
    assert sum(line.startswith("skipped: ") for line in human.stdout.splitlines()) == 2
    assert "9 already in the target" in human.stdout

    remove_nuls(tmp_path / "source.db")  # fixed in the source: a rerun with --resume copies the rest
    again = migrate(source, target, "--resume", "--json")
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.stdout)
    assert (resumed["sessions"], resumed["already_present"], resumed["skipped"]) == (2, 9, [])
    assert resumed["verified"] is True
    assert resumed["complete"] is True
    assert histories(target) == histories(source)


def test_a_rerun_without_resume_is_refused_and_resume_copies_what_is_missing(tmp_path: Path, target: str) -> None:
    populate(tmp_path / "source.db")
    remove_nuls(tmp_path / "source.db")
    source = f"sqlite:///{tmp_path / 'source.db'}"
    src = create_store(source)
    dst = create_store(target)
    try:  # an interrupted copy: the first four sessions are in the target
        for sid in sorted(src.session_ids(), key=str)[:4]:
            session, events = src.read_together(sid)
            assert session is not None
            dst.append(Change(session=session, events=tuple(events), expected_version=0))
    finally:
        src.close()
        dst.close()
    refused = migrate(source, target)
    assert refused.exit_code == 6
    assert "already holds sessions" in refused.output
    assert "--resume" in refused.output
    result = migrate(source, target, "--resume", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["sessions"], report["already_present"], report["verified"]) == (7, 4, True)
    assert histories(target) == histories(source)


def test_resume_reports_a_session_that_differs_in_the_target(tmp_path: Path, target: str) -> None:
    ids, _ = populate(tmp_path / "source.db")
    remove_nuls(tmp_path / "source.db")
    source = f"sqlite:///{tmp_path / 'source.db'}"
    assert migrate(source, target).exit_code == 0
    live = ids[0]
    with SessionManager.open(target, clock=ManualClock(T0)) as mgr:  # written to the target after the copy
        mgr.touch(live, performer_id="someone")
    result = migrate(source, target, "--resume", "--json")
    assert result.exit_code == 9, result.output
    report = json.loads(result.stdout)
    assert report["sessions"] == 0
    assert report["already_present"] == 11
    assert any(d.startswith(f"{live}: ") for d in report["differences"]), report["differences"]
