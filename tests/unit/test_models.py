"""The models are frozen, deeply immutable, timezone-aware, and serialise timestamps as ``...mmmZ``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from sessionflow import Session, SessionEvent, SessionManager, SessionNote, SessionProgress, SessionStatus
from sessionflow.domain.models import TERMINAL_STATUSES, EventType, FileResult
from sessionflow.domain.values import FrozenDict
from sessionflow.testing import ManualClock

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _session(**overrides: Any) -> Session:
    data: dict[str, Any] = {
        "id": uuid4(),
        "status": SessionStatus.PENDING,
        "version": 1,
        "ttl_seconds": 60.0,
        "created_at": T0,
        "updated_at": T0,
        "expires_at": T0 + timedelta(minutes=1),
    }
    data.update(overrides)
    return Session(**data)


def _event(**overrides: Any) -> SessionEvent:
    data: dict[str, Any] = {
        "record_id": uuid4(),
        "session_id": uuid4(),
        "version": 1,
        "event": EventType.CREATED,
        "source_state": None,
        "target_state": SessionStatus.PENDING,
        "performer_id": "u1",
        "timestamp": T0,
    }
    data.update(overrides)
    return SessionEvent(**data)


@pytest.fixture
def manager() -> Any:
    with SessionManager.in_memory(clock=ManualClock(T0 + timedelta(microseconds=123_456))) as mgr:
        yield mgr


def test_status_values_and_terminal_states() -> None:
    assert [s.value for s in SessionStatus] == ["pending", "in_progress", "completed", "failed", "expired"]
    assert {s for s in SessionStatus if s.is_terminal} == TERMINAL_STATUSES
    assert {SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.EXPIRED} == TERMINAL_STATUSES
    assert SessionStatus("in_progress") is SessionStatus.IN_PROGRESS
    assert SessionStatus.PENDING == "pending"


def test_event_names() -> None:
    assert {e.value for e in EventType} == {
        "created", "started", "file_recorded", "note_added", "touched", "updated",
        "completed", "failed", "expired", "deleted", "migrated"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", SessionStatus.FAILED), ("version", 2), ("user_id", "x"), ("metadata", {}), ("file_paths", ())],
)
def test_session_is_frozen(field: str, value: Any) -> None:
    s = _session()
    with pytest.raises(ValidationError):
        setattr(s, field, value)


@pytest.mark.parametrize("model", ["note", "result", "progress", "event"])
def test_parts_are_frozen(model: str) -> None:
    obj: Any = {
        "note": SessionNote(file_path="a", status="ok", created_at=T0),
        "result": FileResult(path="a", recorded_at=T0),
        "progress": SessionProgress(total_files=1),
        "event": _event(),
    }[model]
    name = next(iter(type(obj).model_fields))
    with pytest.raises(ValidationError):
        setattr(obj, name, getattr(obj, name))


def test_extra_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        _session(colour="blue")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        _session(created_at=datetime(2030, 1, 1))
    with pytest.raises(ValidationError, match="naive"):
        _event(timestamp=datetime(2030, 1, 1))


def test_aware_datetimes_are_stored_in_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    s = _session(created_at=datetime(2030, 1, 1, 14, 0, tzinfo=plus2))
    assert s.created_at.utcoffset() == timedelta(0)
    assert s.created_at == T0
    assert s.created_at.hour == 12


def test_json_timestamps_are_iso_8601_with_ms_and_z() -> None:
    s = _session(created_at=T0 + timedelta(microseconds=5_000), closed_at=T0)
    data = json.loads(s.model_dump_json())
    assert data["created_at"] == "2030-01-01T12:00:00.005Z"
    assert data["updated_at"] == "2030-01-01T12:00:00.000Z"
    assert data["expires_at"] == "2030-01-01T12:01:00.000Z"
    assert data["closed_at"] == "2030-01-01T12:00:00.000Z"
    assert data["deleted_at"] is None
    event = _event(timestamp=datetime(2030, 6, 1, 1, 2, 3, 456_789, tzinfo=timezone(timedelta(hours=-3))))
    assert event.model_dump(mode="json")["timestamp"] == "2030-06-01T04:02:03.456Z"
    # Python mode keeps real datetimes.
    assert isinstance(event.model_dump()["timestamp"], datetime)


def test_session_metadata_is_deeply_immutable() -> None:
    s = _session(metadata={"a": [1, {"b": 2}]})
    assert isinstance(s.metadata, FrozenDict)
    with pytest.raises(TypeError):
        s.metadata["a"] = 1
    with pytest.raises(TypeError):
        s.metadata["a"].append(3)
    with pytest.raises(TypeError):
        s.metadata["a"][1]["b"] = 3
    assert s.metadata == {"a": [1, {"b": 2}]}


def test_metadata_must_be_json() -> None:
    with pytest.raises(ValidationError):
        _session(metadata={"n": float("nan")})
    with pytest.raises(ValidationError):
        _session(metadata={1: "x"})


def test_progress_accounting() -> None:
    p = SessionProgress(total_files=3, processed_files=1, failed_files=("b.py",))
    assert p.accounted_files == 2
    assert not p.all_accounted
    assert p.failed_count == 1
    assert SessionProgress(total_files=3, processed_files=2, failed_files=["c.py"]).failed_files == ("c.py",)
    assert SessionProgress(total_files=3, processed_files=2, failed_files=("c.py",)).all_accounted
    assert SessionProgress().all_accounted
    with pytest.raises(ValidationError):
        SessionProgress(total_files=-1)


def test_session_properties() -> None:
    s = _session()
    assert not s.is_terminal
    assert not s.is_deleted
    assert not s.is_overdue(T0)
    assert s.is_overdue(s.expires_at)
    assert s.is_overdue(s.expires_at + timedelta(days=1))
    done = _session(status=SessionStatus.COMPLETED)
    assert done.is_terminal
    assert not done.is_overdue(done.expires_at + timedelta(days=1))
    assert _session(deleted_at=T0).is_deleted


def test_json_round_trip_is_exact() -> None:
    s = _session(metadata={"k": [1, "x", None]}, file_paths=("a", "b"),
                 notes=(SessionNote(file_path="a", memory_id="m", status="ok", created_at=T0),))
    back = Session.model_validate_json(s.model_dump_json())
    assert back == s
    assert isinstance(back.metadata, FrozenDict)
    e = _event(payload={"file_paths": ["a"], "n": 1})
    assert SessionEvent.model_validate_json(e.model_dump_json()) == e


# ---------------------------------------------------------------- objects the manager returns


def test_returned_session_cannot_change_engine_state(manager: SessionManager) -> None:
    s = manager.create(performer_id="u1", user_id="u1", file_paths=["a.py"],
                       metadata={"tags": ["x"], "nested": {"k": 1}})
    with pytest.raises(TypeError):
        s.metadata["tags"].append("y")
    with pytest.raises(TypeError):
        s.metadata["nested"]["k"] = 2
    with pytest.raises(TypeError):
        s.metadata["new"] = 1
    with pytest.raises(ValidationError):
        s.status = SessionStatus.COMPLETED  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.file_paths.append("b.py")  # type: ignore[attr-defined]
    again = manager.get(s.id)
    assert again.metadata == {"tags": ["x"], "nested": {"k": 1}}
    assert again.status is SessionStatus.PENDING
    assert again.file_paths == ("a.py",)


def test_returned_history_cannot_change_engine_state(manager: SessionManager) -> None:
    s = manager.create(performer_id="u1", file_paths=["a.py"], metadata={"tags": ["x"]})
    manager.update(s.id, metadata={"k": [1]}, performer_id="u1")
    events = manager.history(s.id)
    for event in events:
        for value in event.payload.values():
            if isinstance(value, dict | list):
                with pytest.raises(TypeError):
                    value.clear()
    with pytest.raises(TypeError):
        events[0].payload["file_paths"].append("evil.py")
    with pytest.raises(TypeError):
        events[1].payload["metadata"]["k"].append(2)
    events.clear()  # the list itself is the caller's copy
    again = manager.history(s.id)
    assert len(again) == 2
    assert again[0].payload["file_paths"] == ["a.py"]
    assert again[1].payload["metadata"] == {"k": [1]}


def test_metadata_given_to_create_is_copied(manager: SessionManager) -> None:
    meta: dict[str, Any] = {"tags": ["x"]}
    s = manager.create(performer_id="u1", metadata=meta)
    meta["tags"].append("y")
    meta["other"] = 1
    assert manager.get(s.id).metadata == {"tags": ["x"]}


def test_engine_timestamps_are_utc_ms(manager: SessionManager) -> None:
    s = manager.create(performer_id="u1")
    assert s.created_at == T0 + timedelta(microseconds=123_000)
    assert s.created_at.utcoffset() == timedelta(0)
    (event,) = manager.history(s.id)
    assert event.timestamp == s.created_at
    data = json.loads(event.model_dump_json())
    assert data["timestamp"] == "2030-01-01T12:00:00.123Z"
    assert TIMESTAMP.match(data["timestamp"])
    for key in ("created_at", "updated_at", "expires_at"):
        assert TIMESTAMP.match(json.loads(s.model_dump_json())[key])


def test_evolve_and_trusted_build_the_model_validation_would() -> None:
    """The engine's unvalidated constructors give models equal to (and behaving like) validated ones."""
    original = _session(metadata={"a": [1]})
    later = T0 + timedelta(minutes=5)
    evolved = original.evolve(version=2, status=SessionStatus.IN_PROGRESS, updated_at=later)
    assert evolved == original.model_copy(update={"version": 2, "status": SessionStatus.IN_PROGRESS,
                                                  "updated_at": later})
    assert evolved == Session.model_validate(evolved.model_dump())
    assert evolved.model_fields_set == set(Session.model_fields)
    assert (original.version, original.status, original.updated_at) == (1, SessionStatus.PENDING, T0)
    assert evolved.metadata is original.metadata  # unchanged parts are shared, not copied
    with pytest.raises(ValidationError):
        evolved.version = 3  # still frozen
    assert json.loads(evolved.model_dump_json())["version"] == 2
    event = _event()
    assert SessionEvent.trusted(**event.__dict__) == event
    assert SessionEvent.trusted(**event.__dict__).model_fields_set == set(SessionEvent.model_fields)
