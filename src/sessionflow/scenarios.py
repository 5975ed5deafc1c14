"""Scripted scenarios: play steps against a lifecycle on a frozen clock and check expectations.

A scenario is a YAML (or JSON) document::

    lifecycle: session          # a registered name, or a lifecycle file (path relative to the scenario)
    store: memory               # or sqlite (a temporary file)
    ttl: 1h                     # the sessions' default time-to-live
    steps:
      - create s1 with files a.py,b.py
      - send start to s1
      - record a.py on s1
      - record b.py on s1 error parse error
      - expect s1 refuses complete      # a guard refusal changes nothing
      - advance 59m
      - expect s1 in_progress
      - touch s1
      - advance 61m
      - expect s1 expired by system
      - expect s1 events created,started,file_recorded,file_recorded,touched,expired

Steps (``NAME`` is a label the scenario gives a session):

* ``create NAME [with files P1,P2] [ttl DURATION] [user ID]``
* ``send EVENT to NAME [with KEY=VALUE ...]`` — any event of the lifecycle, with arguments for its guards
* ``record PATH on NAME [error TEXT]``, ``note PATH on NAME [status S]``, ``touch NAME``,
  ``set NAME KEY=VALUE ...`` (metadata), ``delete NAME``
* ``advance DURATION`` — the clock moves and every timeout due on the way fires, in deadline order
* ``expect NAME STATE [by PERFORMER]`` — the session's state (and who made its last change)
* ``expect NAME refuses EVENT [with KEY=VALUE ...]`` — the event is refused and nothing changes
* ``expect NAME version N``, ``expect NAME events E1,E2,...``, ``expect NAME deadline in DURATION``,
  ``expect NAME no deadline``, ``expect NAME gone``

Run one with ``sessionflow scenario run FILE`` or from pytest: files named ``*.scenario.yaml`` are
collected as tests by the plugin that comes with sessionflow.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sessionflow.bootstrap import SessionManager
from sessionflow.domain.definitions import LifecycleDefinition, default_registry
from sessionflow.domain.models import Session
from sessionflow.errors import InvalidTransition, LifecycleDefinitionError, SessionflowError, SessionNotFound
from sessionflow.loader import import_modules, load_definition, parse_duration
from sessionflow.testing import ManualClock, TimeTravel

__all__ = ["ScenarioError", "ScenarioReport", "StepResult", "load_scenario", "run_scenario"]


class ScenarioError(SessionflowError):
    """A scenario document or step that cannot be understood."""

    code = "scenario_error"


@dataclass(frozen=True, slots=True)
class StepResult:
    index: int
    step: str
    ok: bool
    expectation: bool
    message: str = ""


@dataclass
class ScenarioReport:
    name: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failures(self) -> list[StepResult]:
        return [step for step in self.steps if not step.ok]

    def summary(self) -> str:
        checks = [s for s in self.steps if s.expectation]
        passed = sum(1 for s in checks if s.ok)
        return f"{self.name}: {passed}/{len(checks)} expectations met, {len(self.failures)} failed steps"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(words: list[str], where: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ScenarioError(f"{where}: expected KEY=VALUE, got {word!r}")
        args[key] = _value(value)
    return args


class _Player:
    def __init__(self, manager: SessionManager, travel: TimeTravel) -> None:
        self.manager = manager
        self.travel = travel
        self.names: dict[str, Any] = {}

    def sid(self, name: str) -> Any:
        if name not in self.names:
            raise ScenarioError(f"no session named {name!r} was created")
        return self.names[name]

    def session(self, name: str) -> Session:
        return self.manager.get(self.sid(name))

    def run(self, step: Any) -> tuple[bool, str]:
        """Play one step; returns (is an expectation, message). Raises AssertionError when one fails."""
        words = shlex.split(step) if isinstance(step, str) else []
        if not words:
            raise ScenarioError(f"empty or unreadable step {step!r}")
        verb, rest = words[0], words[1:]
        handler: Callable[[list[str]], str] | None = getattr(self, f"do_{verb}", None)
        if handler is None:
            raise ScenarioError(f"unknown step {verb!r}")
        return verb == "expect", handler(rest)

    # ------------------------------------------------------------------ actions

    def do_create(self, words: list[str]) -> str:
        if not words:
            raise ScenarioError("create NAME [with files A,B] [ttl 30m] [user U]")
        name, options = words[0], words[1:]
        kwargs: dict[str, Any] = {"performer_id": "scenario"}
        i = 0
        while i < len(options):
            word = options[i]
            if word == "with" and i + 2 < len(options) and options[i + 1] == "files":
                kwargs["file_paths"] = [p for p in options[i + 2].split(",") if p]
                i += 3
            elif word == "ttl":
                kwargs["ttl"] = parse_duration(options[i + 1], "create ttl")
                i += 2
            elif word == "user":
                kwargs["user_id"] = options[i + 1]
                kwargs["performer_id"] = options[i + 1]
                i += 2
            else:
                raise ScenarioError(f"create: unexpected {word!r}")
        session = self.manager.create(**kwargs)
        self.names[name] = session.id
        return f"{name} created ({session.status})"

    def do_send(self, words: list[str]) -> str:
        if len(words) < 3 or words[1] != "to":
            raise ScenarioError("send EVENT to NAME [with KEY=VALUE ...]")
        event, name = words[0], words[2]
        args = _pairs(words[4:], "send") if len(words) > 3 and words[3] == "with" else {}
        session = self.manager.send(self.sid(name), event, performer_id="scenario", **args)
        return f"{name} {event} -> {session.status}"

    def do_record(self, words: list[str]) -> str:
        if len(words) < 3 or words[1] != "on":
            raise ScenarioError("record PATH on NAME [error TEXT]")
        error = " ".join(words[4:]) if len(words) > 3 and words[3] == "error" else None
        self.manager.record_file(self.sid(words[2]), words[0], error=error, performer_id="scenario")
        return f"{words[0]} recorded on {words[2]}"

    def do_note(self, words: list[str]) -> str:
        if len(words) < 3 or words[1] != "on":
            raise ScenarioError("note PATH on NAME [status S]")
        status = words[4] if len(words) > 4 and words[3] == "status" else "stored"
        self.manager.add_note(self.sid(words[2]), file_path=words[0], status=status, performer_id="scenario")
        return f"note on {words[2]}"

    def do_touch(self, words: list[str]) -> str:
        session = self.manager.touch(self.sid(words[0]), performer_id="scenario")
        return f"{words[0]} touched, deadline {session.expires_at}"

    def do_set(self, words: list[str]) -> str:
        name = words[0]
        metadata = {**self.session(name).metadata, **_pairs(words[1:], "set")}
        self.manager.update(self.sid(name), metadata=metadata, performer_id="scenario")
        return f"{name} metadata set"

    def do_delete(self, words: list[str]) -> str:
        self.manager.delete(self.sid(words[0]), performer_id="scenario")
        return f"{words[0]} deleted"

    def do_advance(self, words: list[str]) -> str:
        delta = parse_duration(words[0] if words else None, "advance")
        fired = self.travel.advance(delta)
        return f"advanced {words[0]}: {fired} timeout(s) fired"

    # ------------------------------------------------------------------ expectations

    def do_expect(self, words: list[str]) -> str:
        if len(words) < 2:
            raise ScenarioError("expect NAME ...")
        name, what = words[0], words[1:]
        if what == ["gone"]:
            try:
                self.manager.get(self.sid(name))
            except SessionNotFound:
                return f"{name} is gone"
            raise AssertionError(f"{name} still exists")
        session = self.session(name)
        if what[0] == "refuses":
            event = what[1]
            args = _pairs(what[3:], "expect refuses") if len(what) > 2 and what[2] == "with" else {}
            before = len(self.manager.history(session.id))
            try:
                self.manager.send(session.id, event, performer_id="scenario", **args)
            except InvalidTransition as error:
                if len(self.manager.history(session.id)) != before:
                    raise AssertionError(f"refusing {event} changed {name}'s history") from None
                return f"{name} refuses {event}: {error.reason}"
            raise AssertionError(f"{name} accepted {event}")
        if what[0] == "version":
            assert session.version == int(what[1]), f"{name} is at version {session.version}, not {what[1]}"
            return f"{name} at version {session.version}"
        if what[0] == "events":
            actual = [str(e.event) for e in self.manager.history(session.id)]
            expected = [e for e in what[1].split(",") if e]
            assert actual == expected, f"{name}'s events are {actual}"
            return f"{name} events match"
        if what[:2] == ["deadline", "in"]:
            wanted = self.travel.now() + parse_duration(what[2], "expect deadline")
            assert session.expires_at == wanted, f"{name}'s deadline is {session.expires_at}, not {wanted}"
            return f"{name} deadline {session.expires_at}"
        if what == ["no", "deadline"]:
            assert session.expires_at is None or session.due_at is None, f"{name} has a deadline"
            return f"{name} has no deadline"
        state = what[0]
        assert str(session.status) == state, f"{name} is {session.status}, not {state}"
        if len(what) >= 3 and what[1] == "by":
            performer = self.manager.history(session.id)[-1].performer_id
            assert performer == what[2], f"{name}'s last change was by {performer!r}, not {what[2]!r}"
        return f"{name} is {state}" + (f" by {what[2]}" if len(what) >= 3 else "")


def load_scenario(path: str | Path) -> dict[str, Any]:
    """Read a scenario document (YAML or JSON)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except (OSError, ValueError) as error:
        raise ScenarioError(f"cannot read scenario {file}: {error}") from error
    except Exception as error:
        raise ScenarioError(f"{file}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        raise ScenarioError(f"{file}: a scenario is a mapping with a list of steps")
    return document


def _definition(document: dict[str, Any], base: Path) -> LifecycleDefinition:
    try:
        import_modules(document.get("imports"))
    except LifecycleDefinitionError as error:
        raise ScenarioError(error.message) from error
    lifecycle = document.get("lifecycle", "session")
    if not isinstance(lifecycle, str):
        raise ScenarioError("lifecycle: a registered name or a file")
    candidate = base / lifecycle
    if candidate.suffix.lower() in {".yaml", ".yml", ".json"}:
        return default_registry().register(load_definition(candidate))
    try:
        return default_registry().get(lifecycle)
    except LifecycleDefinitionError as error:
        raise ScenarioError(str(error)) from error


@contextmanager
def _manager(document: dict[str, Any], definition: LifecycleDefinition,
             clock: ManualClock) -> Iterator[SessionManager]:
    ttl = parse_duration(document.get("ttl", "1h"), "ttl")
    store = document.get("store", "memory")
    if store == "memory":
        with SessionManager.in_memory(clock=clock, lifecycle=definition, default_ttl=ttl) as manager:
            yield manager
    elif store == "sqlite":
        with tempfile.TemporaryDirectory() as folder, SessionManager.open(
                f"sqlite:///{Path(folder) / 'scenario.db'}", clock=clock, lifecycle=definition,
                default_ttl=ttl) as manager:
            yield manager
    else:
        raise ScenarioError(f"store: memory or sqlite, not {store!r}")


def run_scenario(path: str | Path, *, store: str | None = None) -> ScenarioReport:
    """Play a scenario file and report each step. Stops at the first failing step."""
    file = Path(path)
    document = load_scenario(file)
    if store is not None:
        document["store"] = store
    definition = _definition(document, file.parent)
    start = document.get("start")
    clock = ManualClock(datetime.fromisoformat(str(start)) if start else None)
    report = ScenarioReport(name=str(document.get("name") or file.name))
    with _manager(document, definition, clock) as manager, TimeTravel(clock, manager) as travel:
        player = _Player(manager, travel)
        for index, step in enumerate(document["steps"], start=1):
            text = step if isinstance(step, str) else json.dumps(step)
            expectation = isinstance(step, str) and step.strip().startswith("expect")
            try:
                expectation, message = player.run(step)
            except AssertionError as error:
                report.steps.append(StepResult(index, text, False, True, str(error)))
                break
            except ScenarioError as error:
                report.steps.append(StepResult(index, text, False, expectation, f"cannot run: {error.message}"))
                break
            except SessionflowError as error:
                report.steps.append(StepResult(index, text, False, expectation, f"{type(error).__name__}: {error}"))
                break
            report.steps.append(StepResult(index, text, True, expectation, message))
    return report

