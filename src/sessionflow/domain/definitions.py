"""Lifecycle definitions: a python-statemachine class, a name, a version and per-state timeouts.

sessionflow runs any ``StateMachine`` as a lifecycle. A :class:`LifecycleDefinition` names it and
declares, per state, a :class:`StateTimeout`: "after this long in this state, the engine fires this event"
(as ``"system"``). Those deadlines live in the store's ``expires_at`` column and are fired by the same
waker and sweeper, exactly once, in any process. The default session lifecycle is itself one definition,
:data:`SESSION_DEFINITION`: its ``pending`` and ``in_progress`` states fire ``expire`` when the session's
TTL runs out.

Definitions are registered in a :class:`LifecycleRegistry` by name and version. Each session records the
name and version it runs under and keeps them: registering version 2 changes nothing for sessions of
version 1 until they are migrated explicitly through the mapping version 2 declares
(:meth:`SessionManager.migrate <sessionflow.SessionManager.migrate>`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from statemachine import StateMachine

from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import EVENT_NAMES, SessionLifecycle
from sessionflow.errors import LifecycleDefinitionError

__all__ = [
    "DATA_EVENTS",
    "SESSION_DEFINITION",
    "LifecycleDefinition",
    "LifecycleRegistry",
    "StateTimeout",
    "default_registry",
]

#: Events that change a session's data, not its state. A lifecycle may define them (then its machine
#: decides); otherwise they are allowed in every state that is not final.
DATA_EVENTS = frozenset({"record_file", "add_note", "touch", "update"})

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class StateTimeout:
    """After ``after`` in a state, fire ``event`` (with ``args``) as ``"system"``.

    ``after=None`` uses the session's own TTL. With ``restart=True`` (the default) the clock restarts each
    time the session enters the state; with ``restart=False`` the running deadline is kept (the default
    lifecycle's TTL runs from creation across ``pending`` and ``in_progress``). ``touch`` — and every write,
    with sliding expiry — moves the deadline to ``now + after``.
    """

    event: str
    after: timedelta | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    restart: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise LifecycleDefinitionError("a state timeout needs the name of the event it fires")
        if self.after is not None and (not isinstance(self.after, timedelta) or self.after <= timedelta(0)):
            raise LifecycleDefinitionError(f"timeout for {self.event!r}: 'after' must be a positive duration")
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))


class LifecycleDefinition:
    """A lifecycle: a ``StateMachine`` class compiled once, with a name, a version and state timeouts.

    Args:
        name: how sessions and the registry refer to it (letters, digits, ``_ . -``; up to 128).
        version: a positive integer; a new version can be registered while sessions of older ones run.
        machine: the python-statemachine ``StateMachine`` subclass (guards and validators as usual).
        timeouts: per state value, the :class:`StateTimeout` it fires.
        event_names: how each machine event is recorded in the history (default: its own name).
        migrations: for an upgrade from an older version, ``{old_version: {old_state: new_state}}``;
            states left out keep their name (and must exist in this version).
    """

    def __init__(
        self,
        name: str,
        version: int,
        machine: type[StateMachine],
        *,
        timeouts: Mapping[str, StateTimeout] | None = None,
        event_names: Mapping[str, str] | None = None,
        migrations: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise LifecycleDefinitionError(f"invalid lifecycle name {name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise LifecycleDefinitionError(f"lifecycle {name!r}: version must be a positive integer")
        self.name = name
        self.version = version
        self.compiled = CompiledLifecycle(machine)
        self.machine = machine
        states = set(self.compiled.states)
        self.timeouts: Mapping[str, StateTimeout] = MappingProxyType(dict(timeouts or {}))
        for state, timeout in self.timeouts.items():
            if state not in states:
                raise LifecycleDefinitionError(f"lifecycle {name!r}: timeout for unknown state {state!r}")
            if state in self.compiled.final_states:
                raise LifecycleDefinitionError(f"lifecycle {name!r}: final state {state!r} cannot time out")
            if not isinstance(timeout, StateTimeout):
                raise LifecycleDefinitionError(f"lifecycle {name!r}: timeout of {state!r} is not a StateTimeout")
            if not self.compiled.transitions(state, timeout.event):
                raise LifecycleDefinitionError(
                    f"lifecycle {name!r}: state {state!r} times out with {timeout.event!r}, "
                    f"which has no transition from {state!r}")
        self.event_names: Mapping[str, str] = MappingProxyType(
            {event: str((event_names or {}).get(event, event)) for event in self.compiled.events})
        self._machine_events = {recorded: event for event, recorded in self.event_names.items()}
        self.migrations: Mapping[int, Mapping[str, str]] = MappingProxyType(
            {int(v): MappingProxyType(dict(m)) for v, m in (migrations or {}).items()})
        for old, mapping in self.migrations.items():
            if old >= version:
                raise LifecycleDefinitionError(f"lifecycle {name!r}: can only migrate from older versions")
            for target in mapping.values():
                if target not in states:
                    raise LifecycleDefinitionError(
                        f"lifecycle {name!r}: migration from v{old} maps to unknown state {target!r}")

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """The rules, comparable: states, transitions with their guards' names, timeouts, event names.
        Two definitions with the same fingerprint decide alike (e.g. one file loaded twice)."""
        compiled = self.compiled
        transitions = tuple(sorted(
            (t.source, t.event, t.target, t.internal, tuple((g.name, g.expected) for g in t.guards),
             tuple(v.name for v in t.validators))
            for state in compiled.states for event in compiled.events
            for t in compiled.transitions(state, event)))
        timeouts = tuple(sorted((s, t.event, t.after, tuple(sorted(t.args.items())), t.restart)
                                for s, t in self.timeouts.items()))
        return (compiled.states, tuple(sorted(compiled.final_states)), transitions, timeouts,
                tuple(sorted(self.event_names.items())),
                tuple(sorted((v, tuple(sorted(m.items()))) for v, m in self.migrations.items())))

    @property
    def states(self) -> tuple[str, ...]:
        return self.compiled.states

    @property
    def initial_state(self) -> str:
        return self.compiled.initial_state

    @property
    def final_states(self) -> frozenset[str]:
        return self.compiled.final_states

    def recorded_name(self, machine_event: str) -> str:
        """The name an event is recorded under in the history."""
        return self.event_names.get(machine_event, machine_event)

    def defines(self, machine_event: str) -> bool:
        return machine_event in self.event_names

    def __repr__(self) -> str:
        return f"LifecycleDefinition({self.name!r}, v{self.version}, {self.machine.__name__})"


#: The default lifecycle: :class:`~sessionflow.domain.lifecycle.SessionLifecycle` as ``session`` v1, whose
#: live states fire ``expire`` when the session's TTL (running from creation) runs out.
SESSION_DEFINITION = LifecycleDefinition(
    "session", 1, SessionLifecycle,
    timeouts={
        "pending": StateTimeout("expire", restart=False),
        "in_progress": StateTimeout("expire", restart=False),
    },
    event_names={event: kind.value for event, kind in EVENT_NAMES.items()},
)


class LifecycleRegistry:
    """Lifecycle definitions by name and version. Thread-safe; definitions are never removed."""

    def __init__(self, *definitions: LifecycleDefinition) -> None:
        self._lock = threading.Lock()
        self._definitions: dict[tuple[str, int], LifecycleDefinition] = {}
        for definition in definitions:
            self.register(definition)

    def register(self, definition: LifecycleDefinition) -> LifecycleDefinition:
        """Add a definition and return the registered one. Registering it again, or an identical one (the
        same file loaded twice), returns the first; different rules under a taken name and version are an
        error (sessions may already run under it: register a new version instead)."""
        if not isinstance(definition, LifecycleDefinition):
            raise LifecycleDefinitionError(f"{definition!r} is not a LifecycleDefinition")
        with self._lock:
            existing = self._definitions.get(definition.key)
            if existing is None:
                self._definitions[definition.key] = definition
                return definition
        if existing is definition or existing.fingerprint == definition.fingerprint:
            return existing
        raise LifecycleDefinitionError(
            f"lifecycle {definition.name!r} version {definition.version} is already registered with other rules")

    def get(self, name: str, version: int | None = None) -> LifecycleDefinition:
        """A definition; without ``version``, the newest one of that name."""
        with self._lock:
            if version is not None:
                found = self._definitions.get((name, version))
            else:
                versions = [d for (n, _), d in self._definitions.items() if n == name]
                found = max(versions, key=lambda d: d.version) if versions else None
        if found is None:
            which = f"{name!r}" if version is None else f"{name!r} version {version}"
            raise LifecycleDefinitionError(f"no lifecycle {which} is registered")
        return found

    def versions(self, name: str) -> list[int]:
        with self._lock:
            return sorted(v for (n, v) in self._definitions if n == name)

    def all_states(self) -> frozenset[str]:
        """Every state of every registered definition."""
        with self._lock:
            return frozenset(state for d in self._definitions.values() for state in d.states)

    def names(self) -> list[str]:
        with self._lock:
            return sorted({n for (n, _) in self._definitions})

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._definitions


_default_registry = LifecycleRegistry(SESSION_DEFINITION)


def default_registry() -> LifecycleRegistry:
    """The process-wide registry, holding :data:`SESSION_DEFINITION` and whatever the program registers."""
    return _default_registry
