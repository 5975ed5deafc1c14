"""A decision table compiled once from a python-statemachine class.

Building a python-statemachine instance and sending it an event costs hundreds of microseconds; the engine
decides thousands of times a second. :class:`CompiledLifecycle` reads the machine class once — its states,
events, transitions and their ``cond``/``unless`` guards — and answers "from state S, may event E happen
with these arguments, and where does it lead?" with a dictionary lookup and the guard calls themselves.

It decides exactly as python-statemachine does: transitions are tried in declaration order, each one's
validators run first (one that raises stops the event, here as :class:`InvalidTransition` with its message),
the first whose ``cond`` guards are all truthy and ``unless`` guards all falsy wins, and guards receive only
the keyword arguments their signatures ask for. ``tests/unit/test_decision.py`` checks that it agrees with the real
machine on every (state, event, guard outcome).

Guards must be pure functions of their arguments (callables, or names of methods on the machine class that
do not read machine state).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from statemachine import StateMachine

from sessionflow.errors import InvalidTransition, LifecycleDefinitionError

__all__ = ["CompiledLifecycle", "CompiledTransition", "Decision", "Guard"]


@dataclass(frozen=True, slots=True)
class Guard:
    """One ``cond`` (``expected=True``) or ``unless`` (``expected=False``) check of a transition."""

    name: str
    func: Callable[..., Any]
    expected: bool
    params: tuple[str, ...] | None  # None: the function takes **kwargs, so it gets every argument
    description: str

    def passes(self, kwargs: Mapping[str, Any]) -> bool:
        if self.params is None:
            result = self.func(**kwargs)
        else:
            result = self.func(**{name: kwargs[name] for name in self.params if name in kwargs})
        return bool(result) is self.expected

    def refusal(self) -> str:
        verb = "refused" if self.expected else "blocked"
        return f"guard {self.name!r} {verb}: {self.description}" if self.description else f"guard {self.name!r} {verb}"


@dataclass(frozen=True, slots=True)
class CompiledTransition:
    event: str
    source: str
    target: str
    internal: bool
    guards: tuple[Guard, ...]
    validators: tuple[Guard, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an allowed event: from ``source`` to ``target`` (equal for a self-transition)."""

    event: str
    source: str
    target: str
    internal: bool


def _params(func: Callable[..., Any]) -> tuple[str, ...] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: give them everything
        return None
    names: list[str] = []
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(param.name)
    return tuple(names)


def _describe(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class CompiledLifecycle:
    """The decision table of one python-statemachine class, built once and safe to share between threads."""

    def __init__(self, machine_class: type[StateMachine]) -> None:
        if not (isinstance(machine_class, type) and issubclass(machine_class, StateMachine)):
            raise LifecycleDefinitionError(f"{machine_class!r} is not a python-statemachine StateMachine class")
        self.machine_class = machine_class
        self._prototype: StateMachine | None = None
        states = list(machine_class.states)
        self.states: tuple[str, ...] = tuple(str(s.value) for s in states)
        self.initial_state: str = next(str(s.value) for s in states if s.initial)
        self.final_states: frozenset[str] = frozenset(str(s.value) for s in states if s.final)
        self.state_set: frozenset[str] = frozenset(self.states)
        table: dict[tuple[str, str], list[CompiledTransition]] = {}
        events: list[str] = []
        for state in states:
            for transition in state.transitions:
                guards = tuple(self._compile_callbacks(transition.cond.list, "guard"))
                validators = tuple(self._compile_callbacks(transition.validators.list, "validator"))
                for event in transition.events:
                    name = str(event.id) if hasattr(event, "id") else str(event)
                    if name not in events:
                        events.append(name)
                    compiled = CompiledTransition(
                        event=name,
                        source=str(transition.source.value),
                        target=str(transition.target.value),
                        internal=bool(transition.internal),
                        guards=guards,
                        validators=validators,
                    )
                    table.setdefault((compiled.source, name), []).append(compiled)
        self.events: tuple[str, ...] = tuple(events)
        self._table: dict[tuple[str, str], tuple[CompiledTransition, ...]] = {
            key: tuple(value) for key, value in table.items()
        }

    def _compile_callbacks(self, specs: Any, kind: str) -> list[Guard]:
        guards: list[Guard] = []
        for spec in specs:
            if getattr(spec, "is_convention", False):
                continue
            func: Any = spec.func
            expected = bool(spec.expected_value) if kind == "guard" else True
            if isinstance(func, str):
                name = func
                attr = getattr(self.machine_class, name, None)
                if attr is None or not callable(attr):
                    raise LifecycleDefinitionError(
                        f"{kind} {name!r} of {self.machine_class.__name__} must name a method of the machine "
                        "or be a callable (boolean expressions are not supported by the compiled table)"
                    )
                if self._prototype is None:
                    self._prototype = self.machine_class()
                func = getattr(self._prototype, name)
            else:
                name = getattr(func, "__name__", repr(func))
            guards.append(Guard(name=name, func=func, expected=expected, params=_params(func),
                                description=_describe(func)))
        return guards

    def transitions(self, state: str, event: str) -> tuple[CompiledTransition, ...]:
        """The candidate transitions for ``event`` from ``state``, in declaration order."""
        return self._table.get((state, event), ())

    def allowed_events(self, state: str) -> tuple[str, ...]:
        """Events that have at least one transition from ``state`` (guards not evaluated)."""
        return tuple(event for event in self.events if (state, event) in self._table)

    def decide(self, state: str, event: str, kwargs: Mapping[str, Any], *,
               session_id: UUID | None = None) -> Decision:
        """Decide ``event`` from ``state``; raise :class:`InvalidTransition` with the reason if refused."""
        candidates = self._table.get((state, event))
        if not candidates:
            if event not in self.events:
                reason = f"unknown event {event!r}"
            elif state in self.final_states:
                reason = f"{state!r} is a final state"
            else:
                reason = f"{event!r} is not allowed from {state!r}"
            raise InvalidTransition(session_id, state=state, event=event, reason=reason)
        refusal = ""
        for transition in candidates:
            for validator in transition.validators:  # as python-statemachine: before the guards; raising stops
                try:
                    validator.passes(kwargs)
                except Exception as error:
                    raise InvalidTransition(session_id, state=state, event=event,
                                            reason=f"validator {validator.name!r}: {error}") from error
            for guard in transition.guards:
                if not guard.passes(kwargs):
                    refusal = refusal or guard.refusal()
                    break
            else:
                return Decision(event, transition.source, transition.target, transition.internal)
        raise InvalidTransition(session_id, state=state, event=event, reason=refusal)
