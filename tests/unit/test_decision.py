"""The compiled decision table decides exactly as python-statemachine does.

For every state, every event and every combination of guard inputs we build the real machine in that state,
send it the event, and compare where it lands (or that it refuses) with ``CompiledLifecycle.decide``. A
hand-written table taken from the rules in the issue is checked too, so the two cannot be wrong together.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import SessionLifecycle
from sessionflow.domain.models import Session, SessionProgress, SessionStatus
from sessionflow.errors import InvalidTransition, LifecycleDefinitionError

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
REFUSED = "<refused>"
_OMIT = object()

COMPILED = CompiledLifecycle(SessionLifecycle)
STATES = [s.value for s in SessionStatus]
EVENTS = ["start", "complete", "fail", "expire", "record_file", "add_note", "touch", "update"]

# Guard inputs: (files all accounted?, reason, deadline relative to now).
ACCOUNTED = [True, False]
REASONS: list[Any] = [_OMIT, None, "", "   ", "\t\n", "disk full", "  x  "]
DEADLINES = {"ahead": timedelta(seconds=1), "now": timedelta(0), "passed": -timedelta(milliseconds=1)}


def _session(state: str, accounted: bool, deadline: timedelta) -> Session:
    progress = SessionProgress(total_files=2, processed_files=1, failed_files=("b",) if accounted else ())
    return Session(id=uuid4(), status=SessionStatus(state), version=3, file_paths=("a", "b"),
                   progress=progress, ttl_seconds=60.0, created_at=NOW - timedelta(minutes=1),
                   updated_at=NOW, expires_at=NOW + deadline)


def _kwargs(session: Session, reason: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"session": session, "now": NOW, "path": "a"}  # an argument no guard asks for
    if reason is not _OMIT:
        kwargs["reason"] = reason
    return kwargs


def _machine_outcome(machine_class: type[StateMachine], state: str, event: str, kwargs: Mapping[str, Any]) -> str:
    machine = machine_class(start_value=state)
    try:
        machine.send(event, **kwargs)
    except TransitionNotAllowed:
        assert machine.current_state_value == state  # a refusal never moves the machine
        return REFUSED
    return str(machine.current_state_value)


def _compiled_outcome(compiled: CompiledLifecycle, state: str, event: str, kwargs: Mapping[str, Any]) -> str:
    sid = uuid4()
    refusal: InvalidTransition | None = None
    try:
        decision = compiled.decide(state, event, kwargs, session_id=sid)
    except InvalidTransition as exc:
        refusal = exc
    if refusal is not None:
        assert (refusal.session_id, refusal.state, refusal.event) == (sid, state, event)
        assert refusal.reason
        return REFUSED
    assert (decision.event, decision.source) == (event, state)
    return decision.target


def _expected(state: str, event: str, accounted: bool, reason: Any, deadline: str) -> str:
    """The rules as the issue states them, written independently of the machine."""
    live = state in ("pending", "in_progress")
    passed = deadline in ("now", "passed")
    has_reason = isinstance(reason, str) and bool(reason.strip())
    if event == "start":
        return "in_progress" if state == "pending" and not passed else REFUSED
    if event == "complete":
        return "completed" if state == "in_progress" and accounted else REFUSED
    if event == "fail":
        return "failed" if live and has_reason else REFUSED
    if event == "expire":
        return "expired" if live and passed else REFUSED
    return state if live else REFUSED  # record_file, add_note, touch, update: self-transitions while live


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
def test_compiled_table_agrees_with_the_machine_on_every_guard_outcome(state: str, event: str) -> None:
    mismatches = []
    outcomes = set()
    for accounted, reason, deadline in itertools.product(ACCOUNTED, REASONS, DEADLINES):
        kwargs = _kwargs(_session(state, accounted, DEADLINES[deadline]), reason)
        machine = _machine_outcome(SessionLifecycle, state, event, kwargs)
        compiled = _compiled_outcome(COMPILED, state, event, kwargs)
        expected = _expected(state, event, accounted, reason, deadline)
        outcomes.add(compiled)
        if not machine == compiled == expected:
            mismatches.append((accounted, reason, deadline, machine, compiled, expected))
    assert not mismatches, f"(accounted, reason, deadline, machine, compiled, rules): {mismatches}"
    # Guarded transitions from live states are seen both allowed and refused.
    if state in ("pending", "in_progress") and event in ("start", "fail", "expire"):
        assert len(outcomes) == 2 or (state, event) == ("in_progress", "start")
    if (state, event) == ("in_progress", "complete"):
        assert outcomes == {"completed", REFUSED}


def test_the_table_describes_the_machine() -> None:
    assert COMPILED.states == tuple(STATES)
    assert COMPILED.initial_state == "pending"
    assert COMPILED.final_states == {"completed", "failed", "expired"}
    assert set(COMPILED.events) == set(EVENTS)
    assert set(COMPILED.allowed_events("pending")) == set(EVENTS) - {"complete"}
    assert set(COMPILED.allowed_events("in_progress")) == set(EVENTS) - {"start"}
    for final in ("completed", "failed", "expired"):
        assert COMPILED.allowed_events(final) == ()


@pytest.mark.parametrize("event", ["record_file", "add_note", "touch", "update"])
@pytest.mark.parametrize("state", ["pending", "in_progress"])
def test_non_transition_events_are_internal_self_transitions(state: str, event: str) -> None:
    decision = COMPILED.decide(state, event, _kwargs(_session(state, False, timedelta(hours=1)), _OMIT))
    assert decision.internal
    assert decision.source == decision.target == state


@pytest.mark.parametrize(
    ("state", "event", "kwargs", "fragment"),
    [
        ("in_progress", "complete", {}, "all_files_accounted"),
        ("pending", "fail", {"reason": " "}, "has_reason"),
        ("pending", "expire", {}, "deadline_passed"),
        ("pending", "start", {"late": True}, "deadline_not_passed"),
        ("pending", "complete", {}, "not allowed from 'pending'"),
        ("completed", "touch", {}, "final state"),
        ("pending", "explode", {}, "unknown event"),
    ],
)
def test_refusals_say_why(state: str, event: str, kwargs: dict[str, Any], fragment: str) -> None:
    late = kwargs.pop("late", False)
    session = _session(state, False, -timedelta(seconds=1) if late else timedelta(hours=1))
    with pytest.raises(InvalidTransition) as info:
        COMPILED.decide(state, event, {"session": session, "now": NOW, **kwargs})
    assert fragment in info.value.reason
    assert info.value.state == state
    assert info.value.event == event
    assert info.value.session_id is None
    assert fragment in str(info.value)


def test_unknown_event_is_refused_by_both() -> None:
    kwargs = _kwargs(_session("pending", True, timedelta(hours=1)), _OMIT)
    assert _machine_outcome(SessionLifecycle, "pending", "explode", kwargs) == REFUSED
    assert _compiled_outcome(COMPILED, "pending", "explode", kwargs) == REFUSED


# ---------------------------------------------------------------- a machine of our own


def over_limit(amount: int = 0) -> bool:
    """The amount needs a review."""
    return amount > 100


def flagged(**kwargs: Any) -> bool:
    return "fraud" in kwargs.get("flags", ())


def approver_ok(approver: str | None = None) -> bool:
    return approver == "boss"


class Approval(StateMachine):
    draft = State(initial=True, value="draft")
    review = State(value="review")
    approved = State(final=True, value="approved")
    rejected = State(final=True, value="rejected")

    # Several transitions for one event: the first whose guards pass wins, in declaration order.
    submit = (
        draft.to(rejected, cond=flagged)
        | draft.to(review, cond=over_limit, unless="trusted")
        | draft.to(approved, cond=["small_enough"], unless=["blocked_user", flagged])
        | draft.to.itself()
    )
    decide = (
        review.to(approved, cond=["small_enough", approver_ok], unless="blocked_user")
        | review.to(review, cond="needs_more", internal=True)
        | review.to(rejected, unless=approver_ok)
    )
    withdraw = draft.to(rejected, event="withdraw cancel") | review.to(rejected, event="withdraw cancel")

    def small_enough(self, amount: int = 0) -> bool:
        return amount <= 1000

    def blocked_user(self, user: str | None = None) -> bool:
        return user == "mallory"

    def trusted(self, user: str | None = None) -> bool:
        return user == "alice"

    def needs_more(self, amount: int = 0, approver: str | None = None) -> bool:
        return approver is None and amount > 1000


APPROVAL_INPUTS = {
    "amount": [_OMIT, 0, 500, 5000],
    "flags": [_OMIT, (), ("fraud",)],
    "user": [_OMIT, "alice", "mallory", "bob"],
    "approver": [_OMIT, None, "boss", "intern"],
}


@pytest.mark.parametrize("state", ["draft", "review", "approved", "rejected"])
def test_custom_machine_with_named_and_callable_guards_agrees(state: str) -> None:
    compiled = CompiledLifecycle(Approval)
    assert set(compiled.events) == {"submit", "decide", "withdraw", "cancel"}
    assert [t.target for t in compiled.transitions("draft", "submit")] == ["rejected", "review", "approved", "draft"]
    mismatches = []
    outcomes = set()
    names = list(APPROVAL_INPUTS)
    for event in [*compiled.events, "unknown"]:
        for values in itertools.product(*APPROVAL_INPUTS.values()):
            kwargs = {name: value for name, value in zip(names, values, strict=True) if value is not _OMIT}
            machine = _machine_outcome(Approval, state, event, kwargs)
            ours = _compiled_outcome(compiled, state, event, kwargs)
            outcomes.add((event, ours))
            if machine != ours:
                mismatches.append((event, kwargs, machine, ours))
    assert not mismatches, mismatches
    if state == "draft":
        assert {o for e, o in outcomes if e == "submit"} == {"rejected", "review", "approved", "draft"}
    if state == "review":
        assert {o for e, o in outcomes if e == "decide"} == {"approved", "review", "rejected", REFUSED}


def test_custom_machine_guard_kinds_are_compiled() -> None:
    compiled = CompiledLifecycle(Approval)
    first, second, third, fallback = compiled.transitions("draft", "submit")
    assert [(g.name, g.expected) for g in first.guards] == [("flagged", True)]
    assert first.guards[0].params is None  # takes **kwargs: gets every argument
    assert [(g.name, g.expected) for g in second.guards] == [("over_limit", True), ("trusted", False)]
    assert second.guards[0].description == "The amount needs a review."
    assert [(g.name, g.expected) for g in third.guards] == [
        ("small_enough", True), ("blocked_user", False), ("flagged", False)]
    assert fallback.guards == ()
    assert not fallback.internal
    internal = compiled.transitions("review", "decide")[1]
    assert internal.internal
    assert compiled.decide("review", "decide", {"amount": 5000}).internal


def test_boolean_expression_guards_are_refused_not_misread() -> None:
    class Expr(StateMachine):
        a = State(initial=True, value="a")
        b = State(final=True, value="b")
        go = a.to(b, cond="x and not y")

        def x(self) -> bool:
            return True

        def y(self) -> bool:
            return False

    with pytest.raises(LifecycleDefinitionError, match="boolean expressions"):
        CompiledLifecycle(Expr)


def test_a_guard_naming_an_attribute_that_is_not_callable_is_refused() -> None:
    class NotCallable(StateMachine):
        a = State(initial=True, value="a")
        b = State(final=True, value="b")
        go = a.to(b, cond="flag")
        flag = 3

    with pytest.raises(LifecycleDefinitionError):
        CompiledLifecycle(NotCallable)


@pytest.mark.parametrize("not_a_machine", [object, dict, SessionLifecycle(), "SessionLifecycle", None, len])
def test_only_state_machine_classes_compile(not_a_machine: Any) -> None:
    with pytest.raises(LifecycleDefinitionError, match="not a python-statemachine StateMachine class"):
        CompiledLifecycle(not_a_machine)


def test_a_plain_class_with_states_does_not_compile() -> None:
    class Lookalike:
        pending = State(initial=True, value="pending")
        done = State(final=True, value="done")

    with pytest.raises(LifecycleDefinitionError):
        CompiledLifecycle(Lookalike)  # type: ignore[arg-type]
