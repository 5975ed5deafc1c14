"""A NUL character (``\\x00``) in any string the library stores is refused with ``InvalidInput`` on every store.

PostgreSQL cannot hold a NUL in a text column nor in a ``jsonb`` string, so letting one through would make the
same call succeed on SQLite, in memory and on Redis and fail as a store error on PostgreSQL. Every store
refuses it the same way instead: ``InvalidInput`` naming the argument, raised before anything is read or
written, so a refused call changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from sessionflow import BatchRejected, InvalidInput, SessionManager
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

Call = Callable[[SessionManager, UUID], Any]

NUL = "a\x00b"


def _live(mgr: SessionManager) -> UUID:
    """A pending session, with file ``a.py`` still to record."""
    return mgr.create(performer_id="u1", user_id="u1", file_paths=["a.py"], metadata={"k": "v"}).id


def _state(mgr: SessionManager) -> tuple[Any, ...]:
    """What a refused call must leave as it was: every session, every history and the feed."""
    sessions = mgr.list(limit=1000)
    return (mgr.count(), mgr.last_position(), mgr.consumer_position("reader"),
            [(s, mgr.history(s.id)) for s in sessions])


#: Calls that store a string somewhere (in a JSON column, a text column or a Redis hash), each given a NUL.
CALLS: dict[str, tuple[str, Call]] = {
    "metadata value": ("metadata", lambda m, sid: m.create(performer_id="u1", metadata={"k": NUL})),
    "metadata key": ("metadata", lambda m, sid: m.create(performer_id="u1", metadata={NUL: 1})),
    "metadata nested value": ("metadata", lambda m, sid: m.create(
        performer_id="u1", metadata={"a": [{"b": {"c": ["ok", NUL]}}]})),
    "metadata nested key": ("metadata", lambda m, sid: m.create(
        performer_id="u1", metadata={"a": {"b": [{NUL: True}]}})),
    "metadata lone NUL": ("metadata", lambda m, sid: m.create(performer_id="u1", metadata={"k": "\x00"})),
    "update metadata": ("metadata", lambda m, sid: m.update(sid, metadata={"k": {"x": NUL}}, performer_id="u1")),
    "event args": ("args", lambda m, sid: m.send(sid, "start", performer_id="u1", note=NUL)),
    "event args nested": ("args", lambda m, sid: m.send_with(
        sid, "start", {"note": {"deep": [NUL]}}, performer_id="u1")),
    "event args nested key": ("args", lambda m, sid: m.send_with(
        sid, "start", {"note": {NUL: 1}}, performer_id="u1")),
    "fail reason sent": ("reason", lambda m, sid: m.send(sid, "fail", performer_id="u1", reason=NUL)),
    "fail reason": ("reason", lambda m, sid: m.fail(sid, reason=NUL, performer_id="u1")),
    "update reason": ("reason", lambda m, sid: m.update(sid, status="failed", reason=NUL, performer_id="u1")),
    "performer_id": ("performer_id", lambda m, sid: m.touch(sid, performer_id=NUL)),
    "create performer_id": ("performer_id", lambda m, sid: m.create(performer_id=NUL)),
    "user_id": ("user_id", lambda m, sid: m.create(performer_id="u1", user_id=NUL)),
    "workspace_id": ("workspace_id", lambda m, sid: m.create(performer_id="u1", workspace_id=NUL)),
    "module_name": ("module_name", lambda m, sid: m.create(performer_id="u1", module_name=NUL)),
    "file_paths": ("file_paths", lambda m, sid: m.create(performer_id="u1", file_paths=["a.py", NUL])),
    "record_file path": ("path", lambda m, sid: m.record_file(sid, NUL, performer_id="u1")),
    "record_file error": ("error", lambda m, sid: m.record_file(sid, "a.py", error=NUL, performer_id="u1")),
    "note file_path": ("file_path", lambda m, sid: m.add_note(sid, file_path=NUL, status="s", performer_id="u1")),
    "note status": ("status", lambda m, sid: m.add_note(sid, file_path="a.py", status=NUL, performer_id="u1")),
    "note memory_id": ("memory_id", lambda m, sid: m.add_note(sid, file_path="a.py", status="s", memory_id=NUL,
                                                              performer_id="u1")),
    "current_file": ("current_file", lambda m, sid: m.update(sid, current_file=NUL, performer_id="u1")),
    "consumer name": ("name", lambda m, sid: m.save_consumer_position(NUL, 1)),
    "consumer name of consume": ("name", lambda m, sid: m.consume(NUL, lambda event: None, follow=False)),
    "list user_id": ("user_id", lambda m, sid: m.list(user_id=NUL)),
    "list lifecycle": ("lifecycle", lambda m, sid: m.list(lifecycle=NUL)),
}


class TestNulRefused(ContractSuite):
    """NUL characters refused."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(minutes=10))

    @pytest.mark.parametrize("case", sorted(CALLS))
    def test_a_nul_in_a_stored_string_is_refused_and_changes_nothing(self, mgr: SessionManager, case: str) -> None:
        field, call = CALLS[case]
        sid = _live(mgr)
        mgr.save_consumer_position("reader", 1)
        before = _state(mgr)
        with pytest.raises(InvalidInput) as caught:
            call(mgr, sid)
        assert caught.value.field == field
        assert "NUL" in caught.value.problem
        assert _state(mgr) == before

    @pytest.mark.parametrize(("item", "field"), [
        ({"metadata": {"k": NUL}}, "metadata"),
        ({"metadata": {"k": [{NUL: 1}]}}, "metadata"),
        ({"user_id": NUL}, "user_id"),
        ({"file_paths": [NUL]}, "file_paths"),
    ])
    def test_a_nul_in_one_item_refuses_the_whole_batch(self, mgr: SessionManager, item: dict[str, Any],
                                                       field: str) -> None:
        _live(mgr)
        before = _state(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.create_many([{}, item], performer_id="svc")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, InvalidInput)
        assert caught.value.error.field == field
        assert _state(mgr) == before

    @pytest.mark.parametrize("args", [{"note": NUL}, {"note": {"k": [NUL]}}, {"note": {NUL: 1}}])
    def test_a_nul_in_the_arguments_of_one_sent_item_refuses_the_batch(self, mgr: SessionManager,
                                                                       args: dict[str, Any]) -> None:
        other, sid = _live(mgr), _live(mgr)
        before = _state(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(other, "start"), (sid, "start", args)], performer_id="u1")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, InvalidInput)
        assert caught.value.error.field == "args"
        assert _state(mgr) == before

    def test_a_sent_failure_reason_is_checked_as_fail_checks_it(self, mgr: SessionManager) -> None:
        sid = _live(mgr)
        before = _state(mgr)
        with pytest.raises(InvalidInput) as caught:
            mgr.send(sid, "fail", performer_id="u1", reason="x" * 8193)
        assert caught.value.field == "reason"
        assert _state(mgr) == before
        failed = mgr.send(sid, "fail", performer_id="u1", reason="  stopped  ")
        assert failed.status == "failed"
        assert mgr.history(sid)[-1].payload == {"reason": "stopped"}

    def test_strings_without_nul_are_stored_unchanged(self, mgr: SessionManager) -> None:
        text = "tab\tnewline\n é ☃ \x7f \\x00 \\u0000 end"
        metadata = {"text": text, text: [text, {"k": text}], "n": 1.5, "none": None}
        session = mgr.create(performer_id="u1", metadata=metadata)
        assert mgr.get(session.id).metadata == metadata
        started = mgr.send(session.id, "start", performer_id="u1", note=text)
        assert mgr.history(started.id)[-1].payload == {"args": {"note": text}}
