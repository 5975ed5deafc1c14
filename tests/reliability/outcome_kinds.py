"""The write kinds of the outcome tests (``test_outcome_truth.py``): how each write is prepared (through the
backdrop's direct manager), run (on the manager under test), counted on the server (how many times it is there:
a torn write fails), and what its OutcomeUnknown and its success must say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from sessionflow import OutcomeUnknown
from tests.reliability.outcome_checks import check_named, repetitions
from tests.reliability.outcome_harness import (
    PG_APPEND,
    PG_CLAIM,
    PG_COMMIT,
    PG_PURGE,
    PG_SAVE,
    R_APPEND,
    R_APPEND_MANY,
    R_CLAIM,
    R_PURGE,
    R_SAVE,
    R_SWEEP,
    Harness,
    Mode,
)


@dataclass
class Kind:
    """One kind of write: how to prepare it, run it, and count it on the server."""

    name: str
    #: The request that commits the write, per store (``"pg"``, ``"pg-async"``, ``"redis"``).
    after: dict[str, bytes]
    #: A request before the commit, whose lost reply kills the transaction, where there is one.
    before: dict[str, bytes] = field(default_factory=dict)
    #: Options of the manager under test.
    options: dict[str, Any] = field(default_factory=dict)
    #: Requests matching the pattern that pass before the faulted one (a later step of a write of several).
    skip: int = 0

    def pattern(self, store: str, flavour: str, mode: Mode) -> bytes | None:
        patterns = self.before if mode.before_commit else self.after
        return patterns.get(f"{store}-{flavour}", patterns.get(store))

    def setup(self, h: Harness) -> Any:
        raise NotImplementedError

    def run(self, manager: Any, state: Any) -> Any:
        raise NotImplementedError

    def applied(self, h: Harness, state: Any, what: str) -> int:
        """How many times the server holds the write (fails on a torn one)."""
        raise NotImplementedError

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        raise NotImplementedError

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        """What a success returned matches the server."""


@dataclass
class OnSession(Kind):
    """A write to one existing session (pending, with one file ``a.py``) that appends ``events``."""

    events: list[str] = field(default_factory=list)
    call: Callable[[Any, UUID], Any] = lambda manager, sid: None
    #: The session is past its deadline when the write runs.
    overdue: bool = False

    def setup(self, h: Harness) -> Any:
        s = h.seed.create(performer_id="p", user_id=h.marker, file_paths=["a.py"], ttl=timedelta(minutes=5))
        if self.overdue:
            h.clock.advance(timedelta(minutes=10))
        return s.id, s.version

    def run(self, manager: Any, state: Any) -> Any:
        return self.call(manager, state[0])

    def _new(self, h: Harness, state: Any) -> list[Any]:
        sid, version = state
        return h.truth.history(sid)[version:]

    def applied(self, h: Harness, state: Any, what: str) -> int:
        return repetitions(what, [e.event for e in self._new(h, state)], self.events)

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        check_named(what, error, h.truth, sessions=[state[0]], new_records={e.record_id for e in self._new(h, state)},
                    applied=bool(applied))

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        assert value.version == state[1] + len(self.events), f"{what}: returned version {value.version}"


class Create(Kind):
    def setup(self, h: Harness) -> Any:
        return h.marker

    def run(self, manager: Any, state: Any) -> Any:
        return manager.create(performer_id="p", user_id=state)

    def _sessions(self, h: Harness, user: str, what: str) -> list[UUID]:
        found = h.truth.sessions_of_user(user)
        for sid in found:
            assert [e.event for e in h.truth.history(sid)] == ["created"], f"{what}: {sid} is not just created"
        return found

    def applied(self, h: Harness, state: Any, what: str) -> int:
        return len(self._sessions(h, state, what))

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        found = self._sessions(h, state, what)
        assert len(error.session_ids) == 1, f"{what}: OutcomeUnknown names {len(error.session_ids)} sessions"
        records = {e.record_id for sid in found for e in h.truth.history(sid)}
        check_named(what, error, h.truth, sessions=found or None, new_records=records, applied=bool(applied))

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        assert self._sessions(h, state, what) == [value.id], f"{what}: the session returned is not the one stored"


class CreateMany(Create):
    SIZE = 3

    def run(self, manager: Any, state: Any) -> Any:
        return manager.create_many([{"user_id": f"{state}-{i}"} for i in range(self.SIZE)], performer_id="p")

    def applied(self, h: Harness, state: Any, what: str) -> int:
        counts = {len(self._sessions(h, f"{state}-{i}", what)) for i in range(self.SIZE)}
        assert len(counts) == 1, f"{what}: a torn batch (sessions per item: {counts})"
        return counts.pop()

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        found = [sid for i in range(self.SIZE) for sid in self._sessions(h, f"{state}-{i}", what)]
        assert len(set(error.session_ids)) == self.SIZE, f"{what}: OutcomeUnknown names {error.session_ids}"
        records = {e.record_id for sid in found for e in h.truth.history(sid)}
        check_named(what, error, h.truth, sessions=found or None, new_records=records, applied=bool(applied))

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        stored = [self._sessions(h, f"{state}-{i}", what) for i in range(self.SIZE)]
        assert stored == [[s.id] for s in value], f"{what}: the sessions returned are not the ones stored"


class SendMany(Kind):
    def setup(self, h: Harness) -> Any:
        return [h.seed.create(performer_id="p", user_id=h.marker).id for _ in range(2)]

    def run(self, manager: Any, state: Any) -> Any:
        a, b = state
        return manager.send_many([(a, "start"), (b, "start"), (a, "complete")], performer_id="p")

    def _new(self, h: Harness, state: Any) -> list[list[Any]]:
        return [h.truth.history(sid)[1:] for sid in state]

    def applied(self, h: Harness, state: Any, what: str) -> int:
        a, b = self._new(h, state)
        counts = {repetitions(what, [e.event for e in a], ["started", "completed"]),
                  repetitions(what, [e.event for e in b], ["started"])}
        assert len(counts) == 1, f"{what}: a torn batch"
        return counts.pop()

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        records = {e.record_id for new in self._new(h, state) for e in new}
        check_named(what, error, h.truth, sessions=state, new_records=records, applied=bool(applied))

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        assert [(s.id, str(s.status)) for s in value] == [
            (state[0], "in_progress"), (state[1], "in_progress"), (state[0], "completed")], what


@dataclass
class Sweep(Kind):
    #: How many sessions are overdue (more than 100 takes PostgreSQL's large-batch path: pipelined chunks).
    size: int = 3

    def setup(self, h: Harness) -> Any:
        sids = [s.id for s in h.seed.create_many([{"user_id": h.marker, "ttl": timedelta(minutes=5)}] * self.size,
                                                 performer_id="p")]
        h.clock.advance(timedelta(minutes=10))  # all overdue
        return sids

    def run(self, manager: Any, state: Any) -> Any:
        return manager.sweep()

    def _expired(self, h: Harness, state: Any, what: str) -> list[int]:
        return [repetitions(what, [e.event for e in h.truth.history(sid)[1:]], ["expired"]) for sid in state]

    def applied(self, h: Harness, state: Any, what: str) -> int:
        counts = set(self._expired(h, state, what))
        assert len(counts) == 1, f"{what}: a torn sweep batch"
        return counts.pop()

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        records = {e.record_id for sid in state for e in h.truth.history(sid)[1:]}
        check_named(what, error, h.truth, sessions=state, new_records=records, applied=bool(applied))

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        expired = sum(self._expired(h, state, what))
        assert value.expired == expired, (f"MISLABEL {what}: the sweep reported {value.expired} sessions expired, "
                                          f"but it expired {expired}")


class Purge(Kind):
    SIZE = 2

    def setup(self, h: Harness) -> Any:
        sids = []
        for _ in range(self.SIZE):
            sid = h.seed.create(performer_id="p", user_id=h.marker).id
            h.seed.delete(sid, performer_id="p")
            sids.append(sid)
        h.seed.create(performer_id="p", user_id=h.marker)  # live, and it holds the feed's newest event
        h.clock.advance(timedelta(days=1))
        return sids, h.clock.now()

    def run(self, manager: Any, state: Any) -> Any:
        return manager.purge(closed_before=state[1])

    def _gone(self, h: Harness, state: Any) -> int:
        return sum(1 for sid in state[0] if not h.truth.exists(sid) and not h.truth.history(sid))

    def applied(self, h: Harness, state: Any, what: str) -> int:
        gone = self._gone(h, state)
        assert gone in (0, self.SIZE), f"{what}: a torn purge batch ({gone} of {self.SIZE} gone)"
        return gone // self.SIZE

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        check_named(what, error, h.truth, sessions=state[0], new_records=None, applied=bool(applied),
                    records=False)

    def check_success(self, h: Harness, state: Any, value: Any, what: str) -> None:
        gone = self._gone(h, state)
        assert value.sessions == gone, (f"MISLABEL {what}: the purge reported {value.sessions} sessions removed, "
                                        f"but it removed {gone}")


@dataclass
class SweepBatches(Sweep):
    """Three overdue sessions swept two per batch: the first batch commits, the second is the one faulted
    (``skip=1``). The rules hold for the faulted batch; what the sweep reports covers both."""

    batch: int = 2

    def run(self, manager: Any, state: Any) -> Any:
        return manager.sweep(batch_size=self.batch)

    def applied(self, h: Harness, state: Any, what: str) -> int:
        expired = sum(self._expired(h, state, what))
        assert expired >= self.batch, f"{what}: the first batch ({self.batch} sessions) was not applied"
        assert expired in (self.batch, self.size), f"{what}: a torn second batch"
        return int(expired == self.size)

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        expired = {sid for sid, n in zip(state, self._expired(h, state, what), strict=True) if n}
        named = set(error.session_ids)
        assert named <= set(state), f"{what}: OutcomeUnknown names sessions that were not overdue"
        assert len(named) == self.size - self.batch, f"{what}: OutcomeUnknown names {len(named)} sessions"
        earlier = len(expired - named)
        assert error.applied == earlier, (f"MISLABEL {what}: OutcomeUnknown.applied is {error.applied}, but the "
                                          f"sweep's earlier batch expired {earlier} sessions")
        records = {e.record_id for sid in named for e in h.truth.history(sid)[1:]}
        check_named(what, error, h.truth, sessions=None, new_records=records, applied=bool(applied))


@dataclass
class PurgeBatches(Purge):
    """Two closed sessions purged one per batch: the first batch commits, the second is the one faulted."""

    def run(self, manager: Any, state: Any) -> Any:
        return manager.purge(closed_before=state[1], batch_size=1)

    def applied(self, h: Harness, state: Any, what: str) -> int:
        gone = self._gone(h, state)
        assert gone >= 1, f"{what}: the first batch was not applied"
        return gone - 1

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        named = set(error.session_ids)
        assert len(named) == 1, f"{what}: OutcomeUnknown names {len(named)} sessions, not the faulted batch's one"
        assert named <= set(state[0]), f"{what}: OutcomeUnknown names a session that was not purged"
        earlier = sum(1 for sid in state[0] if sid not in named and not h.truth.exists(sid))
        assert error.applied == earlier, (f"MISLABEL {what}: OutcomeUnknown.applied is {error.applied}, but the "
                                          f"purge's earlier batch removed {earlier} sessions")


class SavePosition(Kind):
    def setup(self, h: Harness) -> Any:
        s = h.seed.create(performer_id="p", user_id=h.marker)
        h.seed.touch(s.id, performer_id="p")
        h.seed.touch(s.id, performer_id="p")
        h.seed.save_consumer_position("billing", 1)
        return h.seed.last_position()

    def run(self, manager: Any, state: Any) -> Any:
        return manager.save_consumer_position("billing", state)

    def applied(self, h: Harness, state: Any, what: str) -> int:
        position = h.truth.consumer_position("billing")
        assert position in (1, state), f"{what}: stored position {position}"
        return int(position == state)

    def check_unknown(self, h: Harness, state: Any, error: OutcomeUnknown, applied: int, what: str) -> None:
        check_named(what, error, h.truth, sessions=[], new_records=None, applied=bool(applied), records=False)


def _on(name: str, events: list[str], call: Callable[[Any, UUID], Any]) -> OnSession:
    return OnSession(name, {"pg": PG_APPEND, "redis": R_APPEND}, events=events, call=call)


KINDS: list[Kind] = [
    Create("create", {"pg": PG_APPEND, "redis": R_APPEND}),
    _on("start", ["started"], lambda m, sid: m.send(sid, "start", performer_id="p")),
    # single_active_per_user: on PostgreSQL the append is a transaction (advisory lock, check, write, COMMIT)
    OnSession("start_exclusive", {"pg": PG_COMMIT, "redis": R_APPEND}, {"pg": b"pg_advisory_xact_lock"},
              {"single_active_per_user": True}, events=["started"],
              call=lambda m, sid: m.start(sid, performer_id="p")),
    OnSession("expire", {"pg": PG_APPEND, "redis": R_APPEND}, events=["expired"], call=lambda m, sid: m.expire(sid),
              overdue=True),
    _on("touch", ["touched"], lambda m, sid: m.touch(sid, performer_id="p")),
    _on("add_note", ["note_added"], lambda m, sid: m.add_note(sid, file_path="a.py", status="ok", performer_id="p")),
    _on("record_file", ["file_recorded"], lambda m, sid: m.record_file(sid, "a.py", performer_id="p")),
    _on("update", ["updated", "started"],
        lambda m, sid: m.update(sid, performer_id="p", metadata={"k": 1}, status="in_progress")),
    _on("delete", ["deleted"], lambda m, sid: m.delete(sid, performer_id="p")),
    CreateMany("create_many", {"pg": PG_COMMIT, "redis": R_APPEND_MANY}, {"pg": PG_APPEND}),
    SendMany("send_many", {"pg": PG_COMMIT, "redis": R_APPEND_MANY}, {"pg": PG_APPEND}),
    Sweep("sweep", {"pg": PG_COMMIT, "redis": R_SWEEP}, {"pg": PG_CLAIM, "redis": R_CLAIM}),
    Sweep("sweep_large", {"pg": PG_COMMIT, "redis": R_SWEEP}, {"pg": PG_CLAIM, "redis": R_CLAIM}, size=150),
    SweepBatches("sweep_batches", {"pg": PG_COMMIT, "redis": R_SWEEP}, {"pg": PG_CLAIM, "redis": R_CLAIM}, skip=1),
    Purge("purge", {"pg": PG_COMMIT, "redis": R_PURGE}, {"pg": PG_PURGE}),
    PurgeBatches("purge_batches", {"pg": PG_COMMIT, "redis": R_PURGE}, {"pg": PG_PURGE}, skip=1),
    SavePosition("save_position", {"pg": PG_COMMIT, "redis": R_SAVE}, {"pg": PG_SAVE}),
]
#: The kinds whose lost request is tried too (one of each path: a single append, a batch, a sweep, the rest).
REQUEST_LOST_KINDS = {"create", "touch", "create_many", "sweep", "purge", "save_position"}
#: The asyncio manager on Redis runs the very store the synchronous one does (on a worker thread): one kind of
#: each of the store's paths is enough there.
ASYNC_REDIS_KINDS = {"create", "touch", "create_many", "sweep_batches", "purge", "save_position"}

