"""In-memory decision path: what one transition costs before any database is involved.

* sessionflow: ``SessionManager.in_memory()``; each unit is one session created, started and completed
  (three writes, each validated, decided, folded into a new frozen ``Session`` and appended with its
  version check); the figure is per write.
* python-statemachine, the way an engine without a compiled table would use it: build the
  ``SessionLifecycle`` at the session's current state and ``send`` the event with the same keyword
  arguments (``session=``, ``now=``) and therefore the same guards; per transition (start, complete).
* the ``transitions`` library: an equivalent ``Machine`` (same states, transitions and guard functions),
  built at the current state, then ``trigger``; per transition.
* bare decision: ``CompiledLifecycle.decide`` against ``send`` / ``trigger`` on machines built beforehand
  (construction untimed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import transitions

from benchmarks.framework import Benchmark, Contender, Context, Section, profile_contender
from sessionflow import CompiledLifecycle, SessionLifecycle, SessionManager
from sessionflow.domain.lifecycle import all_files_accounted, deadline_not_passed, deadline_passed, has_reason

__all__ = ["BENCHMARK", "transitions_machine"]

_STATES = ["pending", "in_progress", "completed", "failed", "expired"]
_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": "pending", "dest": "in_progress", "conditions": [deadline_not_passed]},
    {"trigger": "complete", "source": "in_progress", "dest": "completed", "conditions": [all_files_accounted]},
    {"trigger": "fail", "source": ["pending", "in_progress"], "dest": "failed", "conditions": [has_reason]},
    {"trigger": "expire", "source": ["pending", "in_progress"], "dest": "expired", "conditions": [deadline_passed]},
    *({"trigger": name, "source": ["pending", "in_progress"], "dest": None}
      for name in ("record_file", "add_note", "touch", "update")),
]


class _Model:
    """The object a ``transitions`` machine drives (it adds ``state``, ``trigger`` and one method per event)."""


def transitions_machine(state: str) -> Any:
    """A ``transitions`` machine equivalent to ``SessionLifecycle``, at ``state``; returns its model."""
    model = _Model()
    transitions.Machine(model=model, states=_STATES, transitions=_TRANSITIONS, initial=state,
                        auto_transitions=False)
    return model


def run(ctx: Context) -> Section:
    section = Section(
        name="decision",
        title="In-memory decision path",
        description=__doc__ or "",
    )
    sessions = ctx.scale(1000, 100)
    rounds = ctx.scale(7, 2)
    log = ctx.log

    manager = SessionManager.in_memory()
    pending = manager.create(user_id="u-1", workspace_id="ws", module_name="bench", performer_id="u-1")
    in_progress = manager.start(manager.create(user_id="u-1", performer_id="u-1").id, performer_id="u-1")
    now = datetime.now(UTC)
    lifecycle = CompiledLifecycle(SessionLifecycle)

    def sessionflow_lifecycle(n: int) -> None:
        with SessionManager.in_memory() as mgr:
            create, start, complete = mgr.create, mgr.start, mgr.complete
            for i in range(n):
                user = f"user-{i % 100}"
                s = create(user_id=user, workspace_id="ws", module_name="bench", performer_id=user)
                start(s.id, performer_id=user)
                complete(s.id, performer_id=user)

    def statemachine_construct_send(n: int) -> None:
        for _ in range(n):
            SessionLifecycle(start_value="pending").send("start", session=pending, now=now)
            SessionLifecycle(start_value="in_progress").send("complete", session=in_progress, now=now)

    def transitions_construct_trigger(n: int) -> None:
        for _ in range(n):
            if not transitions_machine("pending").trigger("start", session=pending, now=now):
                raise AssertionError("transitions refused start")
            if not transitions_machine("in_progress").trigger("complete", session=in_progress, now=now):
                raise AssertionError("transitions refused complete")

    section_contenders = [
        Contender("sessionflow in-memory write (create/start/complete)", "transition", sessionflow_lifecycle,
                  ops_per_unit=3, profile=True),
        Contender("python-statemachine construct + send", "transition", statemachine_construct_send,
                  ops_per_unit=2),
        Contender("transitions construct + trigger", "transition", transitions_construct_trigger, ops_per_unit=2),
    ]
    log(f"  full path: {sessions} sessions x {rounds} rounds")
    full = ctx.measure(section_contenders, sessions, rounds)

    # Bare decisions: machines are built untimed in prepare(); only send/trigger/decide is timed.
    machines: list[SessionLifecycle] = []
    models: list[Any] = []
    kwargs: dict[str, Any] = {"session": pending, "now": now}

    def build_machines(n: int) -> None:
        machines.clear()
        machines.extend(SessionLifecycle(start_value="pending") for _ in range(n))

    def build_models(n: int) -> None:
        models.clear()
        models.extend(transitions_machine("pending") for _ in range(n))

    def decide(n: int) -> None:
        for _ in range(n):
            lifecycle.decide("pending", "start", kwargs)

    def send(n: int) -> None:
        for machine in machines[:n]:
            machine.send("start", session=pending, now=now)

    def trigger(n: int) -> None:
        for model in models[:n]:
            model.trigger("start", session=pending, now=now)

    bare_contenders = [
        Contender("CompiledLifecycle.decide", "decision", decide, profile=True),
        Contender("python-statemachine send (machine built beforehand)", "decision", send, prepare=build_machines),
        Contender("transitions trigger (machine built beforehand)", "decision", trigger, prepare=build_models),
    ]
    bare_n = ctx.scale(1000, 100)
    log(f"  bare decision: {bare_n} x {rounds} rounds")
    bare = ctx.measure(bare_contenders, bare_n, rounds)
    machines.clear()
    models.clear()
    manager.close()

    ours = section.add(full["sessionflow in-memory write (create/start/complete)"])
    for label in ("python-statemachine construct + send", "transitions construct + trigger"):
        section.compare(ours, section.add(full[label]), "latency")
    decided = section.add(bare["CompiledLifecycle.decide"])
    for label in ("python-statemachine send (machine built beforehand)",
                  "transitions trigger (machine built beforehand)"):
        section.compare(decided, section.add(bare[label]), "latency")
    section.notes.append(
        "The sessionflow figure is a whole write through the manager (validation, decision, event, fold, "
        "append); the references only decide. Guards are the same functions in all three.")
    if ctx.profile:
        section.profiles.append(profile_contender(section_contenders[0], sessions))
    return section


BENCHMARK = Benchmark(name="decision", title="In-memory decision path", run=run, order=10,
                      summary="sessionflow in-memory writes vs python-statemachine and transitions")
