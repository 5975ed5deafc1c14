"""A hypothesis state machine drives the manager and a tiny reference model side by side.

The model is plain dictionaries and the rules as the issue states them, written here independently of the
lifecycle class. After every step the manager's stored sessions must agree with the model (status, version,
deadline, progress, history length), and replaying each history must give the stored session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from sessionflow import (
    ActiveSessionExists,
    InvalidInput,
    InvalidTransition,
    Session,
    SessionManager,
    SessionNotFound,
    SessionStatus,
    replay,
)
from sessionflow.testing import ManualClock

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LIVE = {"pending", "in_progress"}


@dataclass
class Model:
    """What the reference model knows about one session."""

    user: str | None
    files: tuple[str, ...]
    ttl: timedelta
    expires_at: datetime
    status: str = "pending"
    version: int = 1
    recorded: dict[str, bool] = field(default_factory=dict)  # path -> failed?
    notes: int = 0
    deleted: bool = False

    def due(self, now: datetime) -> bool:
        return not self.deleted and self.status in LIVE and self.expires_at <= now


Outcome = type[Exception] | set[type[Exception]] | None


def build_manager(clock: ManualClock) -> SessionManager:
    """The manager under test; backend-neutral apart from this one line."""
    return SessionManager.in_memory(clock=clock, default_ttl=timedelta(minutes=10), single_active_per_user=True)


class ManagerVersusModel(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.mgr = build_manager(self.clock)
        self.model: dict[UUID, Model] = {}

    def teardown(self) -> None:
        self.mgr.close()

    # ------------------------------------------------------------ the reference rules

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def expire(self, m: Model) -> None:
        m.status = "expired"
        m.version += 1

    def lazy(self, m: Model) -> None:
        """Reads and writes see an overdue live session expired first (one event, by the engine)."""
        if m.due(self.now):
            self.expire(m)

    def sweep(self) -> int:
        due = [m for m in self.model.values() if m.due(self.now)]
        for m in due:
            self.expire(m)
        return len(due)

    def start_outcome(self, sid: UUID, m: Model) -> Outcome:
        """``start`` of a session already seen through lazy expiry; applies it when allowed."""
        if m.status != "pending":
            return InvalidTransition
        if m.user is not None and any(  # a session past its deadline is not in progress: it never blocks
                o.user == m.user and o.status == "in_progress" and not o.deleted and not o.due(self.now)
                and k != sid for k, o in self.model.items()):
            return ActiveSessionExists
        m.status = "in_progress"
        m.version += 1
        return None

    def check(self, outcome: Outcome, call: Any) -> Any:
        expected = outcome if isinstance(outcome, set) else {outcome} if outcome is not None else set()
        refusal: Exception | None = None
        try:
            result = call()
        except (InvalidTransition, InvalidInput, ActiveSessionExists, SessionNotFound) as exc:
            refusal = exc
        if refusal is not None:
            assert type(refusal) in expected, (
                f"unexpected {type(refusal).__name__}: {refusal}; expected {expected or 'success'}")
            return None
        assert not expected, f"expected {expected}, but the call succeeded"
        return result

    def write(self, sid: UUID, apply: Any, call: Any, *, lazy: bool = True) -> Any:
        """Deleted → not found; else lazy expiry, then ``apply(model) -> outcome``, then compare."""
        m = self.model[sid]
        if m.deleted:
            return self.check(SessionNotFound, call)
        if lazy:
            self.lazy(m)
        return self.check(apply(m), call)

    # ------------------------------------------------------------ rules

    @initialize(target=sessions, files=st.integers(0, 2), ttl=st.sampled_from([60, 600, 3600]))
    def first(self, files: int, ttl: int) -> UUID:
        return self.create(user="u1", files=files, ttl=ttl)

    @initialize(target=sessions, files=st.integers(0, 2), ttl=st.sampled_from([60, 600, 3600]))
    def second(self, files: int, ttl: int) -> UUID:
        return self.create(user="u1", files=files, ttl=ttl)  # the same user: the policy has work to do

    @rule(target=sessions, user=st.sampled_from([None, "u1", "u2"]), files=st.integers(0, 3),
          ttl=st.sampled_from([60, 600, 3600]))
    def create(self, user: str | None, files: int, ttl: int) -> UUID:
        paths = tuple(f"f{i}.py" for i in range(files))
        s = self.mgr.create(performer_id=user or "anon", user_id=user, file_paths=paths,
                            ttl=timedelta(seconds=ttl))
        assert (s.status, s.version) == (SessionStatus.PENDING, 1)
        self.model[s.id] = Model(user=user, files=paths, ttl=timedelta(seconds=ttl),
                                 expires_at=self.now + timedelta(seconds=ttl))
        return s.id

    @rule(seconds=st.sampled_from([1, 30, 59, 60, 61, 300, 600, 3600]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(sid=sessions)
    def start(self, sid: UUID) -> None:
        self.write(sid, lambda m: self.start_outcome(sid, m), lambda: self.mgr.start(sid, performer_id="p"))

    @rule(sid=sessions, index=st.integers(0, 3), error=st.booleans())
    def record_file(self, sid: UUID, index: int, error: bool) -> None:
        path = f"f{index}.py"

        def apply(m: Model) -> Outcome:
            bad_path = path not in m.files or path in m.recorded
            if bad_path and m.status not in LIVE:
                return {InvalidInput, InvalidTransition}
            if bad_path:
                return InvalidInput
            if m.status not in LIVE:
                return InvalidTransition
            m.recorded[path] = error
            m.version += 1
            return None

        self.write(sid, apply, lambda: self.mgr.record_file(sid, path, error="bad" if error else None,
                                                            performer_id="p"))

    @rule(sid=sessions)
    def add_note(self, sid: UUID) -> None:
        def apply(m: Model) -> Outcome:
            if m.status not in LIVE:
                return InvalidTransition
            m.notes += 1
            m.version += 1
            return None

        self.write(sid, apply, lambda: self.mgr.add_note(sid, file_path="f0.py", status="stored", performer_id="p"))

    @rule(sid=sessions)
    def touch(self, sid: UUID) -> None:
        def apply(m: Model) -> Outcome:
            if m.status not in LIVE:
                return InvalidTransition
            m.expires_at = self.now + m.ttl
            m.version += 1
            return None

        self.write(sid, apply, lambda: self.mgr.touch(sid, performer_id="p"))

    @rule(sid=sessions)
    def complete(self, sid: UUID) -> None:
        def apply(m: Model) -> Outcome:
            if m.status != "in_progress" or len(m.recorded) != len(m.files):
                return InvalidTransition
            m.status = "completed"
            m.version += 1
            return None

        self.write(sid, apply, lambda: self.mgr.complete(sid, performer_id="p"))

    @rule(sid=sessions, reason=st.sampled_from(["", "  ", "boom"]))
    def fail(self, sid: UUID, reason: str) -> None:
        def apply(m: Model) -> Outcome:
            if m.status not in LIVE or not reason.strip():
                return InvalidTransition
            m.status = "failed"
            m.version += 1
            return None

        self.write(sid, apply, lambda: self.mgr.fail(sid, reason=reason, performer_id="p"))

    @rule(sid=sessions)
    def expire_one(self, sid: UUID) -> None:
        def apply(m: Model) -> Outcome:
            if not m.due(self.now):
                return InvalidTransition
            self.expire(m)
            return None

        self.write(sid, apply, lambda: self.mgr.expire(sid), lazy=False)

    @rule(sid=sessions)
    def delete(self, sid: UUID) -> None:
        def apply(m: Model) -> Outcome:
            m.deleted = True
            m.version += 1
            return None

        self.write(sid, apply, lambda: self.mgr.delete(sid, performer_id="p"), lazy=False)

    @rule(sid=sessions, fields=st.booleans(), status=st.sampled_from([None, "in_progress", "completed", "failed"]))
    def update(self, sid: UUID, fields: bool, status: str | None) -> None:
        def apply(m: Model) -> Outcome:
            if m.status not in LIVE:
                return InvalidTransition
            if status is None:
                m.version += 1
                return None
            before = (m.status, m.version)
            if fields:
                m.version += 1
            if status == "in_progress":
                outcome = self.start_outcome(sid, m)
            elif status == "completed":
                ok = m.status == "in_progress" and len(m.recorded) == len(m.files)
                outcome = None if ok else InvalidTransition
                if ok:
                    m.status, m.version = "completed", m.version + 1
            else:
                outcome = InvalidTransition  # no reason given: fail is refused
            if outcome is not None:
                m.status, m.version = before  # the field change is not written either
            return outcome

        kwargs: dict[str, Any] = {"metadata": {"step": 1}} if fields else {}
        if status is not None:
            kwargs["status"] = status
        if not kwargs:  # refused before the session is even read
            self.check(InvalidInput, lambda: self.mgr.update(sid, performer_id="p"))
            return
        self.write(sid, apply, lambda: self.mgr.update(sid, performer_id="p", **kwargs))

    @rule(sid=sessions)
    def get(self, sid: UUID) -> None:
        def apply(m: Model) -> Outcome:
            return None

        seen = self.write(sid, apply, lambda: self.mgr.get(sid))
        if seen is not None:
            assert seen.status.value == self.model[sid].status

    @rule(sid=sessions)
    def get_active(self, sid: UUID) -> None:
        m = self.model[sid]
        if not m.deleted:
            self.lazy(m)
        active = self.mgr.get_active(sid)
        assert (active is not None) == (not m.deleted and m.status in LIVE)

    @rule()
    def list_all(self) -> None:
        self.sweep()
        listed = {s.id: s.status.value for s in self.mgr.list(limit=1000)}
        assert listed == {sid: m.status for sid, m in self.model.items() if not m.deleted}

    @rule()
    def expire_sessions(self) -> None:
        assert self.mgr.expire_sessions() == self.sweep()

    # ------------------------------------------------------------ invariants

    @invariant()
    def stored_sessions_agree_with_the_model(self) -> None:
        for sid, m in self.model.items():
            stored = self.mgr.store.get(sid)
            assert stored is not None
            history = self.mgr.history(sid)
            assert (stored.status.value, stored.version, stored.deleted_at is not None) == (
                m.status, m.version, m.deleted), sid
            assert len(history) == m.version
            assert [e.version for e in history] == list(range(1, m.version + 1))
            assert stored.expires_at == m.expires_at
            assert stored.progress.processed_files == sum(1 for failed in m.recorded.values() if not failed)
            assert stored.progress.failed_count == sum(1 for failed in m.recorded.values() if failed)
            assert stored.progress.failed_files == tuple(path for path, failed in m.recorded.items() if failed)
            assert len(stored.notes) == m.notes
            assert replay(history) == stored

    @precondition(lambda self: bool(self.model))
    @invariant()
    def get_equals_replay_when_nothing_is_due(self) -> None:
        for sid, m in self.model.items():
            if not m.deleted and not m.due(self.now):
                got: Session = self.mgr.get(sid)
                assert got == replay(self.mgr.history(sid))

    @invariant()
    def one_user_one_session_in_progress(self) -> None:
        live = [m.user for m in self.model.values()
                if m.user is not None and m.status == "in_progress" and not m.deleted and not m.due(self.now)]
        assert len(live) == len(set(live))


ManagerVersusModel.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestManagerVersusModel = ManagerVersusModel.TestCase
