"""Both policies, the errors and their context, and the input checks every write makes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from sessionflow import (
    SYSTEM,
    ActiveSessionExists,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    Session,
    SessionflowError,
    SessionManager,
    SessionNotFound,
    SessionStatus,
    SessionUserMismatch,
)
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

Write = Callable[[SessionManager, UUID, str], Any]

#: Every write that takes a performer, applied to a pending session with file "a.py".
WRITES: dict[str, Write] = {
    "start": lambda m, sid, p: m.start(sid, performer_id=p),
    "record_file": lambda m, sid, p: m.record_file(sid, "a.py", performer_id=p),
    "add_note": lambda m, sid, p: m.add_note(sid, file_path="a.py", status="stored", performer_id=p),
    "touch": lambda m, sid, p: m.touch(sid, performer_id=p),
    "update": lambda m, sid, p: m.update(sid, metadata={"k": 1}, performer_id=p),
    "update_status": lambda m, sid, p: m.update(sid, status="in_progress", performer_id=p),
    "fail": lambda m, sid, p: m.fail(sid, reason="stop", performer_id=p),
    "delete": lambda m, sid, p: m.delete(sid, performer_id=p),
}


def unchanged(mgr: SessionManager, before: Session, history_length: int) -> None:
    assert mgr.get(before.id) == before
    assert len(mgr.history(before.id)) == history_length


class TestPoliciesAndErrors(ContractSuite):
    """Policies, errors, input checks."""

    # ---------------------------------------------------------------- single_active_per_user

    @pytest.fixture
    def single(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, single_active_per_user=True)

    @pytest.mark.parametrize("how", ["start", "update"])
    def test_single_active_per_user_refuses_a_second_start(self, single: SessionManager, how: str) -> None:
        a = single.create(performer_id="u1", user_id="u1")
        b = single.create(performer_id="u1", user_id="u1")
        single.start(a.id, performer_id="u1")
        second: Callable[[], Any] = {
            "start": lambda: single.start(b.id, performer_id="u1"),
            "update": lambda: single.update(b.id, metadata={"x": 1}, status="in_progress", performer_id="u1"),
        }[how]
        with pytest.raises(ActiveSessionExists) as info:
            second()
        error = info.value
        assert (error.session_id, error.user_id, error.active_session_id) == (b.id, "u1", a.id)
        assert error.to_dict()["active_session_id"] == str(a.id)
        assert str(a.id) in str(error)
        unchanged(single, b, 1)
        assert single.get(b.id).metadata == {}

    def test_single_active_per_user_allows_others(self, single: SessionManager) -> None:
        a = single.create(performer_id="u1", user_id="u1")
        single.start(a.id, performer_id="u1")
        other_user = single.create(performer_id="u2", user_id="u2")
        assert single.start(other_user.id, performer_id="u2").status is SessionStatus.IN_PROGRESS
        anonymous = [single.create(performer_id="x") for _ in range(2)]
        for s in anonymous:
            assert single.start(s.id, performer_id="x").status is SessionStatus.IN_PROGRESS
        # Pending sessions of the same user do not count, only one in progress does.
        pending = [single.create(performer_id="u3", user_id="u3") for _ in range(3)]
        assert single.start(pending[0].id, performer_id="u3").status is SessionStatus.IN_PROGRESS

    @pytest.mark.parametrize("end", ["complete", "fail", "delete"])
    def test_single_active_per_user_frees_the_user_when_the_session_ends(self, single: SessionManager,
                                                                         end: str) -> None:
        a = single.create(performer_id="u1", user_id="u1")
        b = single.create(performer_id="u1", user_id="u1")
        single.start(a.id, performer_id="u1")
        {"complete": lambda: single.complete(a.id, performer_id="u1"),
         "fail": lambda: single.fail(a.id, reason="r", performer_id="u1"),
         "delete": lambda: single.delete(a.id, performer_id="u1")}[end]()
        assert single.start(b.id, performer_id="u1").status is SessionStatus.IN_PROGRESS

    def test_single_active_per_user_ignores_an_overdue_session(self, single: SessionManager,
                                                               clock: ManualClock) -> None:
        a = single.create(performer_id="u1", user_id="u1", ttl=timedelta(seconds=10))
        b = single.create(performer_id="u1", user_id="u1", ttl=timedelta(hours=1))
        single.start(a.id, performer_id="u1")
        clock.advance(timedelta(seconds=10))
        # ``a`` is past its deadline: no read reports it in progress, so it does not block ``b``.
        assert single.start(b.id, performer_id="u1").status is SessionStatus.IN_PROGRESS
        assert single.get(a.id).status is SessionStatus.EXPIRED
        assert [str(e.event) for e in single.history(a.id)].count("expired") == 1

    def test_policies_are_off_by_default(self, make_manager: MakeManager) -> None:
        mgr = make_manager()
        a = mgr.create(performer_id="u1", user_id="u1")
        b = mgr.create(performer_id="u1", user_id="u1")
        mgr.start(a.id, performer_id="u1")
        assert mgr.start(b.id, performer_id="u1").status is SessionStatus.IN_PROGRESS
        assert mgr.touch(a.id, performer_id="someone-else").version == 3

    # ---------------------------------------------------------------- enforce_owner

    @pytest.fixture
    def owned(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, enforce_owner=True)

    @pytest.mark.parametrize("write", list(WRITES))
    def test_enforce_owner_refuses_other_users(self, owned: SessionManager, write: str) -> None:
        s = owned.create(performer_id="u1", user_id="u1", file_paths=["a.py"])
        with pytest.raises(SessionUserMismatch) as info:
            WRITES[write](owned, s.id, "u2")
        error = info.value
        assert (error.session_id, error.owner, error.performer_id) == (s.id, "u1", "u2")
        assert error.to_dict()["owner"] == "u1"
        unchanged(owned, s, 1)

    @pytest.mark.parametrize("write", list(WRITES))
    @pytest.mark.parametrize("performer", ["u1", SYSTEM])
    def test_enforce_owner_allows_the_owner_and_system(self, owned: SessionManager, write: str, performer: str) -> None:
        s = owned.create(performer_id="u1", user_id="u1", file_paths=["a.py"])
        result = WRITES[write](owned, s.id, performer)
        assert result.version == 2
        assert owned.history(s.id)[-1].performer_id == performer

    def test_enforce_owner_leaves_sessions_without_a_user_open(self, owned: SessionManager) -> None:
        s = owned.create(performer_id="u1", file_paths=["a.py"])
        assert owned.start(s.id, performer_id="anyone").status is SessionStatus.IN_PROGRESS

    def test_enforce_owner_still_expires_as_system(self, owned: SessionManager, clock: ManualClock) -> None:
        s = owned.create(performer_id="u1", user_id="u1", ttl=timedelta(seconds=1))
        clock.advance(timedelta(seconds=1))
        assert owned.expire(s.id).closed_by == SYSTEM

    # ---------------------------------------------------------------- errors carry their context

    def test_error_hierarchy(self) -> None:
        for error in (SessionNotFound, InvalidTransition, ConcurrencyConflict, ActiveSessionExists,
                      SessionUserMismatch, InvalidInput):
            assert issubclass(error, SessionflowError)
        assert issubclass(SessionNotFound, LookupError)
        assert issubclass(InvalidInput, ValueError)

    def test_errors_describe_themselves(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        s = mgr.create(performer_id="u1", file_paths=["a.py"])
        with pytest.raises(InvalidTransition) as transition:
            mgr.complete(s.id, performer_id="u1")
        data = transition.value.to_dict()
        assert data == {"error": "InvalidTransition", "code": "invalid_transition", "message": str(transition.value),
                        "session_id": str(s.id), "state": "pending", "event": "complete",
                        "reason": transition.value.reason}
        assert "complete" in str(transition.value)
        assert "pending" in str(transition.value)

        with pytest.raises(ConcurrencyConflict) as conflict:
            mgr.touch(s.id, expected_version=7, performer_id="u1")
        data = conflict.value.to_dict()
        assert (data["expected_version"], data["actual_version"], data["session_id"]) == (7, 1, str(s.id))
        assert data["code"] == "concurrency_conflict"

        with pytest.raises(InvalidInput) as bad:
            mgr.record_file(s.id, "zzz.py", performer_id="u1")
        data = bad.value.to_dict()
        assert (data["field"], data["session_id"], data["code"]) == ("path", str(s.id), "invalid_input")
        assert "zzz.py" in data["problem"]

        missing = UUID(int=7)
        with pytest.raises(SessionNotFound) as nf:
            mgr.get(missing)
        assert nf.value.to_dict() == {"error": "SessionNotFound", "code": "session_not_found",
                                      "message": f"session {missing} not found", "session_id": str(missing)}

    # ---------------------------------------------------------------- input checks

    @pytest.mark.parametrize("performer", ["", " ", "\t", None, 42, "x" * 300, "a\nb"])
    @pytest.mark.parametrize("write", list(WRITES))
    def test_performer_id_is_required(self, make_manager: MakeManager, write: str, performer: Any) -> None:
        mgr = make_manager()
        s = mgr.create(performer_id="u1", user_id="u1", file_paths=["a.py"])
        with pytest.raises(InvalidInput) as info:
            WRITES[write](mgr, s.id, performer)
        assert info.value.field == "performer_id"
        unchanged(mgr, s, 1)

    @pytest.mark.parametrize("performer", ["", "  ", None])
    def test_create_needs_a_performer(self, make_manager: MakeManager, performer: Any) -> None:
        mgr = make_manager()
        with pytest.raises(InvalidInput) as info:
            mgr.create(performer_id=performer)
        assert info.value.field == "performer_id"
        assert mgr.list() == []

    @pytest.mark.parametrize("bad_id", ["", "not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g",
                                        "' OR '1'='1", "x" * 100, 12345, None])
    def test_malformed_ids_are_invalid_input(self, make_manager: MakeManager, bad_id: Any) -> None:
        mgr = make_manager()
        s = mgr.create(performer_id="u1", file_paths=["a.py"])
        calls: list[Callable[[], Any]] = [
            lambda: mgr.get(bad_id),
            lambda: mgr.get_active(bad_id),
            lambda: mgr.history(bad_id),
            lambda: mgr.expire(bad_id),
            *[partial(w, mgr, bad_id, "u1") for w in WRITES.values()],
        ]
        for call in calls:
            with pytest.raises(InvalidInput) as info:
                call()
            assert info.value.field == "session_id"
        unchanged(mgr, s, 1)
