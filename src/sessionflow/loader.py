"""Lifecycle definitions from data: a YAML or JSON document a team can review without reading Python.

::

    name: review
    version: 1
    states:
      draft: {initial: true}
      in_review: {}
      approved: {final: true}
      rejected: {final: true}
    events:
      submit:
        - {from: draft, to: in_review, cond: [has_title]}
      approve:
        - {from: in_review, to: approved, cond: [has_reviewer], unless: [is_author]}
      reject:
        - {from: [draft, in_review], to: rejected}
    timeouts:
      in_review: {after: 2h, event: reject, args: {reason: review timed out}}
    event_names: {submit: submitted}

Guard and validator names are bound to Python callables the program registers (:func:`guard` or a
``guards=`` mapping); a name with no callable is an error when the document is loaded, not later. The
document becomes an ordinary python-statemachine ``StateMachine`` class (so diagrams and the compiled
decision table work as for a class written in Python) inside a :class:`LifecycleDefinition`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from statemachine import State, StateMachine

from sessionflow.domain.definitions import LifecycleDefinition, StateTimeout
from sessionflow.errors import LifecycleDefinitionError

__all__ = ["guard", "import_modules", "load_definition", "parse_duration", "registered_guards"]

F = TypeVar("F", bound=Callable[..., Any])

_guards: dict[str, Callable[..., Any]] = {}
_guards_lock = threading.Lock()
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*s)?\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def guard(name_or_func: str | F | None = None) -> Any:
    """Register a guard or validator under a name documents can use: ``@guard`` or ``@guard("name")``."""

    def register(func: F, name: str | None = None) -> F:
        key = name or func.__name__
        with _guards_lock:
            _guards[key] = func
        return func

    if callable(name_or_func):
        return register(name_or_func)
    return lambda func: register(func, name_or_func)


def registered_guards() -> dict[str, Callable[..., Any]]:
    with _guards_lock:
        return dict(_guards)


def import_modules(names: Any) -> None:
    """Import the modules a document lists under ``imports`` (they register guards with :func:`guard`).

    A document that imports modules runs code: load documents you trust, as you would import Python.
    """
    if names is None:
        return
    import importlib

    for name in _names(names, "imports"):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise LifecycleDefinitionError(f"imports: cannot import {name!r}: {error}") from error


def parse_duration(value: Any, where: str) -> timedelta:
    """``90`` (seconds), ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` as a positive :class:`timedelta`."""
    if isinstance(value, bool):
        raise LifecycleDefinitionError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and (match := _DURATION.match(value)):
        d, h, m, s = (float(x) if x else 0.0 for x in match.groups())
        seconds = d * 86400 + h * 3600 + m * 60 + s
    else:
        raise LifecycleDefinitionError(f"{where}: {value!r} is not a duration (e.g. 90s, 10m, 1h30m)")
    if seconds <= 0:
        raise LifecycleDefinitionError(f"{where}: a duration must be positive")
    return timedelta(seconds=seconds)


def _names(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise LifecycleDefinitionError(f"{where}: expected a name or a list of names")
    return list(items)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LifecycleDefinitionError(f"{where}: expected a mapping")
    return dict(value)


def _callables(names: list[str], guards: Mapping[str, Callable[..., Any]], where: str) -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    for name in names:
        func = guards.get(name)
        if func is None:
            raise LifecycleDefinitionError(f"{where}: no guard or validator named {name!r} is registered")
        found.append(func)
    return found


def build_machine(document: Mapping[str, Any], guards: Mapping[str, Callable[..., Any]]) -> type[StateMachine]:
    """A ``StateMachine`` class from the ``states`` and ``events`` of a lifecycle document."""
    name = str(document.get("name") or "Lifecycle")
    states_doc = _mapping(document.get("states"), "states")
    if not states_doc:
        raise LifecycleDefinitionError("a lifecycle needs states")
    attrs: dict[str, Any] = {}
    states: dict[str, State] = {}
    for state_id, spec in states_doc.items():
        if not isinstance(state_id, str) or not _IDENT.match(state_id):
            raise LifecycleDefinitionError(f"state {state_id!r}: use letters, digits and underscores")
        spec = _mapping(spec, f"state {state_id}")
        unknown = set(spec) - {"initial", "final", "name"}
        if unknown:
            raise LifecycleDefinitionError(f"state {state_id}: unknown keys {sorted(unknown)}")
        state = State(str(spec.get("name", state_id)), value=state_id, initial=bool(spec.get("initial")),
                      final=bool(spec.get("final")))
        states[state_id] = attrs[state_id] = state
    events_doc = _mapping(document.get("events"), "events")
    for event, transitions in events_doc.items():
        if not isinstance(event, str) or not _IDENT.match(event) or event in states:
            raise LifecycleDefinitionError(f"event {event!r}: use a name that is not a state's")
        if not isinstance(transitions, list) or not transitions:
            raise LifecycleDefinitionError(f"event {event}: expected a list of transitions")
        combined: Any = None
        for index, spec in enumerate(transitions):
            where = f"event {event}, transition {index + 1}"
            spec = _mapping(spec, where)
            unknown = set(spec) - {"from", "to", "cond", "unless", "validators", "internal"}
            if unknown:
                raise LifecycleDefinitionError(f"{where}: unknown keys {sorted(unknown)}")
            sources = _names(spec.get("from"), f"{where}: from")
            target = spec.get("to")
            if not sources or not isinstance(target, str):
                raise LifecycleDefinitionError(f"{where}: needs 'from' and 'to'")
            for state_id in (*sources, target):
                if state_id not in states:
                    raise LifecycleDefinitionError(f"{where}: unknown state {state_id!r}")
            options: dict[str, Any] = {
                "cond": _callables(_names(spec.get("cond"), where), guards, where),
                "unless": _callables(_names(spec.get("unless"), where), guards, where),
                "validators": _callables(_names(spec.get("validators"), where), guards, where),
            }
            for source in sources:
                if source == target and spec.get("internal"):
                    link = states[source].to.itself(internal=True, **options)  # type: ignore[no-untyped-call]
                else:
                    link = states[source].to(states[target], **options)
                combined = link if combined is None else combined | link
        attrs[event] = combined
    try:
        machine = type(re.sub(r"\W", "_", name).title().replace("_", "") or "Lifecycle", (StateMachine,), attrs)
    except Exception as error:  # python-statemachine's own checks (no initial state, unreachable states, ...)
        raise LifecycleDefinitionError(f"lifecycle {name!r}: {error}") from error
    return machine


def definition_from_document(document: Mapping[str, Any],
                             guards: Mapping[str, Callable[..., Any]] | None = None) -> LifecycleDefinition:
    """A :class:`LifecycleDefinition` from a parsed document (see the module docstring)."""
    if not isinstance(document, Mapping):
        raise LifecycleDefinitionError("a lifecycle document is a mapping")
    unknown = set(document) - {"name", "version", "states", "events", "timeouts", "event_names", "migrations",
                               "description", "imports"}
    if unknown:
        raise LifecycleDefinitionError(f"unknown keys {sorted(unknown)}")
    import_modules(document.get("imports"))
    bound = {**registered_guards(), **(guards or {})}
    machine = build_machine(document, bound)
    timeouts: dict[str, StateTimeout] = {}
    for state_id, spec in _mapping(document.get("timeouts"), "timeouts").items():
        spec = _mapping(spec, f"timeout of {state_id}")
        unknown = set(spec) - {"after", "event", "args", "restart"}
        if unknown:
            raise LifecycleDefinitionError(f"timeout of {state_id}: unknown keys {sorted(unknown)}")
        after = spec.get("after")
        timeouts[str(state_id)] = StateTimeout(
            str(spec.get("event") or ""),
            after=None if after in (None, "ttl") else parse_duration(after, f"timeout of {state_id}"),
            args=_mapping(spec.get("args"), f"timeout of {state_id}: args"),
            restart=bool(spec.get("restart", True)),
        )
    version = document.get("version", 1)
    migrations = {int(k): {str(a): str(b) for a, b in _mapping(v, f"migration from {k}").items()}
                  for k, v in _mapping(document.get("migrations"), "migrations").items()}
    return LifecycleDefinition(
        str(document.get("name") or ""), version if isinstance(version, int) else -1, machine,
        timeouts=timeouts,
        event_names={str(k): str(v) for k, v in _mapping(document.get("event_names"), "event_names").items()},
        migrations=migrations,
    )


def load_definition(path: str | Path, guards: Mapping[str, Callable[..., Any]] | None = None) -> LifecycleDefinition:
    """Load a lifecycle from a ``.yaml``/``.yml`` or ``.json`` file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise LifecycleDefinitionError(f"cannot read {file}: {error.strerror or error}") from error
    try:
        if file.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except Exception as error:
        raise LifecycleDefinitionError(f"{file}: not valid {file.suffix.lstrip('.') or 'YAML'}: {error}") from error
    return definition_from_document(document, guards)
