"""Building a lifecycle from a document: the ``StateMachine`` class and the :class:`LifecycleDefinition`.

Owns :func:`load_definition` (a file) and :func:`definition_from_document` (a parsed document): the document is
validated (:mod:`~sessionflow.loader.format`), its cross-references checked (states and events it names, the
versions it migrates from), guard names bound to registered callables (:mod:`~sessionflow.loader.guards`),
and the result becomes an ordinary python-statemachine class inside a definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from statemachine import State, StateMachine

from sessionflow.domain.definitions import LifecycleDefinition, StateTimeout
from sessionflow.errors import LifecycleDefinitionError
from sessionflow.loader.format import HINTS, WHAT, LifecycleDocument
from sessionflow.loader.guards import import_modules, registered_guards
from sessionflow.loader.problems import DocumentProblem, KeyPath, LifecycleDocumentError, Lines
from sessionflow.loader.reading import read_document
from sessionflow.loader.validation import validate_document

__all__ = ["definition_from_document", "load_definition"]


def _callables(names: list[str], guards: Mapping[str, Callable[..., Any]], where: KeyPath,
               problems: list[tuple[KeyPath, str]]) -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    for name in names:
        func = guards.get(name)
        if func is None:
            problems.append((where, f"no guard or validator named {name!r} is registered"))
        else:
            found.append(func)
    return found


def _check(document: LifecycleDocument) -> list[tuple[KeyPath, str]]:
    """What the format cannot say: names that refer to states and events the document defines."""
    problems: list[tuple[KeyPath, str]] = []
    states, events = document.states, document.events
    for event in events:
        if event in states:
            problems.append((("events", event), f"{event!r} is a state: an event needs a name of its own"))
    for state, timeout in document.timeouts.items():
        if state not in states:
            problems.append((("timeouts", state), f"unknown state {state!r}"))
        elif states[state].final:
            problems.append((("timeouts", state), f"final state {state!r} cannot time out"))
        elif not any(state in t.from_ for t in events.get(timeout.event, [])):
            problems.append((("timeouts", state, "event"),
                             f"{timeout.event!r} has no transition from {state!r}: it cannot fire there"))
    problems += [(("event_names", name), f"no event {name!r}") for name in document.event_names if name not in events]
    for old, mapping in document.migrations.items():
        if old >= document.version:
            problems.append((("migrations", str(old)),
                             f"can only migrate from older versions (this is version {document.version})"))
        problems += [(("migrations", str(old), source), f"unknown state {target!r}")
                     for source, target in mapping.items() if target not in states]
    return problems


def _machine(document: LifecycleDocument, guards: Mapping[str, Callable[..., Any]],
             problems: list[tuple[KeyPath, str]]) -> type[StateMachine] | None:
    """The ``StateMachine`` class of a document; ``None`` (and ``problems``) when names do not resolve."""
    attrs: dict[str, Any] = {}
    states: dict[str, State] = {}
    for state_id, state in document.states.items():
        states[state_id] = attrs[state_id] = State(state.name or state_id, value=state_id, initial=state.initial,
                                                   final=state.final)
    for event, transitions in document.events.items():
        combined: Any = None
        for index, spec in enumerate(transitions):
            where: KeyPath = ("events", event, index)
            for key, state_id in [*(("from", s) for s in spec.from_), ("to", spec.to)]:
                if state_id not in states:
                    problems.append(((*where, key), f"unknown state {state_id!r}"))
            options = {key: _callables(getattr(spec, key), guards, (*where, key), problems)
                       for key in ("cond", "unless", "validators")}
            if problems:
                continue
            for source in spec.from_:
                if source == spec.to and spec.internal:
                    link = states[source].to.itself(internal=True, **options)  # type: ignore[no-untyped-call]
                else:
                    link = states[source].to(states[spec.to], **options)
                combined = link if combined is None else combined | link
        attrs[event] = combined
    if problems:
        return None
    class_name = re.sub(r"\W", "_", document.name).title().replace("_", "") or "Lifecycle"
    try:
        return type(class_name, (StateMachine,), attrs)
    except Exception as error:  # python-statemachine's own checks (no initial state, unreachable states, ...)
        problems.append((("states",), f"lifecycle {document.name!r}: {' '.join(str(error).split())}"))
        return None


def _definition(document: LifecycleDocument, guards: Mapping[str, Callable[..., Any]] | None,
                file: str | None, lines: Lines) -> LifecycleDefinition:
    def fail(problems: list[tuple[KeyPath, str]]) -> LifecycleDocumentError:
        return LifecycleDocumentError([DocumentProblem.at(path, text, lines) for path, text in problems], file)

    try:
        import_modules(document.imports)
    except LifecycleDefinitionError as error:
        raise fail([(("imports",), error.message.removeprefix("imports: "))]) from error
    problems = _check(document)
    machine = _machine(document, {**registered_guards(), **(guards or {})}, problems)
    if problems or machine is None:
        raise fail(problems)
    timeouts = {state: StateTimeout(spec.event, after=spec.after, args=spec.args, restart=spec.restart)
                for state, spec in document.timeouts.items()}
    try:
        return LifecycleDefinition(document.name, document.version, machine, timeouts=timeouts,
                                   event_names=document.event_names, migrations=document.migrations)
    except LifecycleDefinitionError as error:
        raise fail([((), error.message)]) from error


def definition_from_document(document: Mapping[str, Any],
                             guards: Mapping[str, Callable[..., Any]] | None = None) -> LifecycleDefinition:
    """A :class:`LifecycleDefinition` from a parsed document (see the module docstring).

    A malformed document is a :class:`LifecycleDocumentError` listing each problem with its key path.
    """
    model = validate_document(LifecycleDocument, document, file=None, lines={}, error=LifecycleDocumentError,
                              hints=HINTS, what=WHAT)
    return _definition(model, guards, None, {})


def load_definition(path: str | Path, guards: Mapping[str, Callable[..., Any]] | None = None) -> LifecycleDefinition:
    """Load a lifecycle from a ``.yaml``/``.yml`` or ``.json`` file (UTF-8, at most 1 MiB, no YAML aliases).

    A file that cannot be read or used is a :class:`LifecycleDocumentError` naming the file and, for each
    problem, the key path and (YAML) the line.
    """
    data, lines = read_document(path, LifecycleDocumentError)
    model = validate_document(LifecycleDocument, data, file=str(path), lines=lines, error=LifecycleDocumentError,
                              hints=HINTS, what=WHAT)
    return _definition(model, guards, str(path), lines)
