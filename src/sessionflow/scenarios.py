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

Header keys: ``name``, ``description``, ``lifecycle``, ``imports``, ``store``, ``ttl``, ``start`` (an ISO 8601
time with a time zone; default 2030-01-01T00:00:00Z) and ``steps`` — any other key is an error, as is a
malformed value (the format is :class:`ScenarioDocument`; ``sessionflow schema scenario`` prints its JSON
Schema). Files are read as lifecycle files are (:func:`sessionflow.loader.read_document`: UTF-8, at most 1 MiB,
no YAML anchors or aliases), and every mistake is a :class:`ScenarioDocumentError` naming the file, the key
and the line. Durations, in the header and in steps, follow :mod:`sessionflow.domain.durations` (``90``,
``500ms``, ``1h30m``, ``1.5h``).

A failed expectation raises :class:`ExpectationFailed` (never ``assert``, which ``python -O`` removes): the
step fails, with what was expected and what was found, and the scenario stops there.

Run one with ``sessionflow scenario run FILE`` or from pytest: files named ``*.scenario.yaml`` are
collected as tests by the plugin that comes with sessionflow.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sessionflow.bootstrap import SessionManager
from sessionflow.domain.definitions import LifecycleDefinition, default_registry
from sessionflow.domain.durations import parse_duration
from sessionflow.domain.models import Session
from sessionflow.errors import (
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    SessionflowError,
    SessionNotFound,
)
from sessionflow.loader import (
    Document,
    DocumentProblem,
    Duration,
    Lines,
    Names,
    Timestamp,
    describe_problems,
    duration_field,
    import_modules,
    json_schema,
    load_definition,
    ordered_problems,
    problems_dict,
    read_document,
    validate_document,
)
from sessionflow.testing import ManualClock, TimeTravel

__all__ = ["ExpectationFailed", "ScenarioDocument", "ScenarioDocumentError", "ScenarioError", "ScenarioReport",
           "StepResult", "load_scenario", "run_scenario", "scenario_schema"]


class ScenarioError(SessionflowError):
    """A scenario document or step that cannot be understood."""

    code = "scenario_error"


class ScenarioDocumentError(ScenarioError, InvalidInput):
    """A scenario file that cannot be used (also an :class:`~sessionflow.errors.InvalidInput`: exit 6 on the
    command line). ``file`` and ``problems`` as :class:`~sessionflow.loader.LifecycleDocumentError`'s: each
    :class:`~sessionflow.loader.DocumentProblem` with its key path, line and what is wrong."""

    def __init__(self, problems: Sequence[DocumentProblem], file: str | None = None) -> None:
        self.file = file
        self.problems = ordered_problems(problems)
        first = self.problems[0] if self.problems else DocumentProblem("", "invalid scenario")
        self.field = first.path or "scenario"
        self.problem = first.problem
        SessionflowError.__init__(self, describe_problems(file, self.problems))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(problems_dict(self.file, self.problems))
        return data


class ExpectationFailed(ScenarioError):
    """An ``expect`` step found something else: ``expected`` and ``actual`` say what (as text)."""

    code = "expectation_failed"

    def __init__(self, message: str, *, expected: Any, actual: Any) -> None:
        super().__init__(message)
        self.expected = str(expected)
        self.actual = str(actual)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(expected=self.expected, actual=self.actual)
        return data


class ScenarioDocument(Document):
    """A scenario file: which lifecycle and store to play on, the sessions' default TTL, when the clock starts,
    and the steps (see the module docstring)."""

    name: str | None = None
    description: str | None = None
    lifecycle: str = "session"
    imports: Names = []  # noqa: RUF012 (a pydantic field: each document gets its own list)
    store: Literal["memory", "sqlite"] = "memory"
    ttl: Duration = duration_field("1h")
    start: Timestamp | None = None
    steps: list[str]


_HINTS = {"steps": "a scenario needs a list of steps"}


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files (``sessionflow schema scenario``)."""
    return json_schema(ScenarioDocument, "sessionflow scenario")


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step played: its number (from 1), text, outcome and message, and its line in the file (YAML)."""

    index: int
    step: str
    ok: bool
    expectation: bool
    message: str = ""
    line: int | None = None


@dataclass
class ScenarioReport:
    """The steps a scenario played, up to the first that failed."""

    name: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every step played passed."""
        return all(step.ok for step in self.steps)

    @property
    def failures(self) -> list[StepResult]:
        """The steps that failed (at most one: the scenario stops there)."""
        return [step for step in self.steps if not step.ok]

    def summary(self) -> str:
        """``NAME: P/N expectations met, F failed steps``."""
        checks = [s for s in self.steps if s.expectation]
        passed = sum(1 for s in checks if s.ok)
        return f"{self.name}: {passed}/{len(checks)} expectations met, {len(self.failures)} failed steps"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _pairs(words: list[str], where: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ScenarioError(f"{where}: expected KEY=VALUE, got {word[:60]!r}")
        args[key] = _value(value)
    return args


def _duration(text: str, usage: str) -> timedelta:
    if not text:
        raise ScenarioError(usage)
    try:
        return parse_duration(text, "duration")
    except InvalidInput as error:
        raise ScenarioError(f"{usage}: {error.problem}") from None


def _version(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise ScenarioError(f"expect NAME version N: a version is a positive integer, not {text[:40]!r}")
    return int(text)


class _Player:
    def __init__(self, manager: SessionManager, travel: TimeTravel) -> None:
        self.manager = manager
        self.travel = travel
        self.names: dict[str, Any] = {}

    def sid(self, name: str) -> Any:
        if name not in self.names:
            raise ScenarioError(f"no session named {name[:60]!r} was created")
        return self.names[name]

    def session(self, name: str) -> Session:
        return self.manager.get(self.sid(name))

    def run(self, step: str) -> tuple[bool, str]:
        """Play one step; returns (is an expectation, message). Raises :class:`ExpectationFailed` when an
        expectation is not met and :class:`ScenarioError` when the step cannot be understood."""
        try:
            words = shlex.split(step)
        except ValueError as error:
            raise ScenarioError(f"cannot split the step into words: {error}") from None
        if not words:
            raise ScenarioError(f"empty or unreadable step {step[:60]!r}")
        verb, rest = words[0], words[1:]
        handler: Callable[[list[str]], str] | None = getattr(self, f"do_{verb}", None) if verb.isidentifier() else None
        if handler is None:
            raise ScenarioError(f"unknown step {verb[:60]!r}")
        return verb == "expect", handler(rest)

    # ------------------------------------------------------------------ actions

    def do_create(self, words: list[str]) -> str:
        usage = "create NAME [with files A,B] [ttl 30m] [user U]"
        if not words:
            raise ScenarioError(usage)
        name, options = words[0], words[1:]
        kwargs: dict[str, Any] = {"performer_id": "scenario"}
        i = 0
        while i < len(options):
            word = options[i]
            if word == "with" and i + 2 < len(options) and options[i + 1] == "files":
                kwargs["file_paths"] = [p for p in options[i + 2].split(",") if p]
                i += 3
            elif word in ("ttl", "user") and i + 1 < len(options):
                if word == "ttl":
                    kwargs["ttl"] = _duration(options[i + 1], usage)
                else:
                    kwargs["user_id"] = kwargs["performer_id"] = options[i + 1]
                i += 2
            else:
                raise ScenarioError(f"{usage}: unexpected {word[:60]!r}")
        session = self.manager.create(**kwargs)
        self.names[name] = session.id
        return f"{name} created ({session.status})"

    def do_send(self, words: list[str]) -> str:
        if len(words) < 3 or words[1] != "to" or (len(words) > 3 and words[3] != "with"):
            raise ScenarioError("send EVENT to NAME [with KEY=VALUE ...]")
        event, name = words[0], words[2]
        args = _pairs(words[4:], "send")
        session = self.manager.send(self.sid(name), event, performer_id="scenario", **args)
        return f"{name} {event} -> {session.status}"

    def do_record(self, words: list[str]) -> str:
        if len(words) < 3 or words[1] != "on" or (len(words) > 3 and words[3] != "error"):
            raise ScenarioError("record PATH on NAME [error TEXT]")
        error = " ".join(words[4:]) if len(words) > 3 else None
        self.manager.record_file(self.sid(words[2]), words[0], error=error, performer_id="scenario")
        return f"{words[0]} recorded on {words[2]}"

    def do_note(self, words: list[str]) -> str:
        if len(words) not in (3, 5) or words[1] != "on" or (len(words) == 5 and words[3] != "status"):
            raise ScenarioError("note PATH on NAME [status S]")
        status = words[4] if len(words) == 5 else "stored"
        self.manager.add_note(self.sid(words[2]), file_path=words[0], status=status, performer_id="scenario")
        return f"note on {words[2]}"

    def do_touch(self, words: list[str]) -> str:
        if len(words) != 1:
            raise ScenarioError("touch NAME")
        session = self.manager.touch(self.sid(words[0]), performer_id="scenario")
        return f"{words[0]} touched, deadline {session.expires_at}"

    def do_set(self, words: list[str]) -> str:
        if len(words) < 2:
            raise ScenarioError("set NAME KEY=VALUE ...")
        name = words[0]
        metadata = {**self.session(name).metadata, **_pairs(words[1:], "set")}
        self.manager.update(self.sid(name), metadata=metadata, performer_id="scenario")
        return f"{name} metadata set"

    def do_delete(self, words: list[str]) -> str:
        if len(words) != 1:
            raise ScenarioError("delete NAME")
        self.manager.delete(self.sid(words[0]), performer_id="scenario")
        return f"{words[0]} deleted"

    def do_advance(self, words: list[str]) -> str:
        text = " ".join(words)
        delta = _duration(text, "advance DURATION")
        try:
            fired = self.travel.advance(delta)
        except OverflowError:
            raise ScenarioError(f"cannot run: advancing {text} would take the clock past the year 9999") from None
        return f"advanced {text}: {fired} timeout(s) fired"

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
            raise ExpectationFailed(f"{name} still exists", expected="gone", actual="exists")
        if what[0] == "refuses":
            return self._expect_refusal(name, what)
        session = self.session(name)
        if what[0] == "version":
            if len(what) != 2:
                raise ScenarioError("expect NAME version N")
            wanted = _version(what[1])
            if session.version != wanted:
                raise ExpectationFailed(f"{name} is at version {session.version}, not {wanted}",
                                        expected=wanted, actual=session.version)
            return f"{name} at version {session.version}"
        if what[0] == "events":
            if len(what) != 2:
                raise ScenarioError("expect NAME events E1,E2,...")
            actual = [str(e.event) for e in self.manager.history(session.id)]
            expected = [e for e in what[1].split(",") if e]
            if actual != expected:
                raise ExpectationFailed(f"{name}'s events are {actual}", expected=expected, actual=actual)
            return f"{name} events match"
        if what[:2] == ["deadline", "in"]:
            usage = "expect NAME deadline in DURATION"
            wanted_at = self.travel.now() + _duration(" ".join(what[2:]), usage)
            if session.expires_at != wanted_at:
                raise ExpectationFailed(f"{name}'s deadline is {session.expires_at}, not {wanted_at}",
                                        expected=wanted_at, actual=session.expires_at)
            return f"{name} deadline {session.expires_at}"
        if what == ["no", "deadline"]:
            if not (session.expires_at is None or session.due_at is None):
                raise ExpectationFailed(f"{name} has a deadline", expected=None, actual=session.expires_at)
            return f"{name} has no deadline"
        return self._expect_state(name, session, what)

    def _expect_refusal(self, name: str, what: list[str]) -> str:
        if len(what) < 2 or (len(what) > 2 and what[2] != "with"):
            raise ScenarioError("expect NAME refuses EVENT [with KEY=VALUE ...]")
        session, event = self.session(name), what[1]
        args = _pairs(what[3:], "expect refuses")
        before = len(self.manager.history(session.id))
        try:
            self.manager.send(session.id, event, performer_id="scenario", **args)
        except InvalidTransition as error:
            after = len(self.manager.history(session.id))
            if after != before:
                raise ExpectationFailed(f"refusing {event} changed {name}'s history", expected=f"{before} events",
                                        actual=f"{after} events") from None
            return f"{name} refuses {event}: {error.reason}"
        raise ExpectationFailed(f"{name} accepted {event}", expected="refused", actual="accepted")

    def _expect_state(self, name: str, session: Session, what: list[str]) -> str:
        if len(what) not in (1, 3) or (len(what) == 3 and what[1] != "by"):
            raise ScenarioError("expect NAME STATE [by PERFORMER]")
        state = what[0]
        if str(session.status) != state:
            raise ExpectationFailed(f"{name} is {session.status}, not {state}", expected=state, actual=session.status)
        if len(what) == 3:
            performer = self.manager.history(session.id)[-1].performer_id
            if performer != what[2]:
                raise ExpectationFailed(f"{name}'s last change was by {performer!r}, not {what[2]!r}",
                                        expected=what[2], actual=performer)
            return f"{name} is {state} by {what[2]}"
        return f"{name} is {state}"


def _load(path: str | Path) -> tuple[ScenarioDocument, Lines]:
    data, lines = read_document(path, ScenarioDocumentError)
    document = validate_document(ScenarioDocument, data, file=str(path), lines=lines, error=ScenarioDocumentError,
                                 hints=_HINTS, what="a scenario is a mapping with a list of steps")
    return document, lines


def load_scenario(path: str | Path) -> ScenarioDocument:
    """Read and check a scenario file (YAML or JSON); a mistake is a :class:`ScenarioDocumentError`."""
    return _load(path)[0]


def _definition(document: ScenarioDocument, file: Path, lines: Lines) -> LifecycleDefinition:
    def fail(key: str, error: SessionflowError) -> ScenarioDocumentError:
        return ScenarioDocumentError([DocumentProblem.at((key,), error.message, lines)], str(file))

    try:
        import_modules(document.imports)
    except LifecycleDefinitionError as error:
        raise fail("imports", error) from error
    candidate = file.parent / document.lifecycle
    try:
        if candidate.suffix.lower() in {".yaml", ".yml", ".json"}:
            return default_registry().register(load_definition(candidate))
        return default_registry().get(document.lifecycle)
    except LifecycleDefinitionError as error:
        raise fail("lifecycle", error) from error


@contextmanager
def _manager(document: ScenarioDocument, store: str, definition: LifecycleDefinition,
             clock: ManualClock) -> Iterator[SessionManager]:
    if store == "memory":
        with SessionManager.in_memory(clock=clock, lifecycle=definition, default_ttl=document.ttl) as manager:
            yield manager
    else:
        with tempfile.TemporaryDirectory() as folder, SessionManager.open(
                f"sqlite:///{Path(folder) / 'scenario.db'}", clock=clock, lifecycle=definition,
                default_ttl=document.ttl) as manager:
            yield manager


def _play(player: _Player, index: int, step: str, line: int | None) -> StepResult:
    expectation = step.strip().startswith("expect")
    try:
        expectation, message = player.run(step)
    except ExpectationFailed as error:
        return StepResult(index, step, False, True, error.message, line)
    except ScenarioError as error:
        message = error.message if error.message.startswith("cannot run") else f"cannot run: {error.message}"
        return StepResult(index, step, False, expectation, message, line)
    except SessionflowError as error:
        return StepResult(index, step, False, expectation, f"{type(error).__name__}: {error}", line)
    except (OverflowError, ValueError) as error:  # e.g. a date past the year 9999
        return StepResult(index, step, False, expectation, f"cannot run: {type(error).__name__}: {error}", line)
    return StepResult(index, step, True, expectation, message, line)


def run_scenario(path: str | Path, *, store: str | None = None) -> ScenarioReport:
    """Play a scenario file and report each step. Stops at the first failing step.

    ``store`` (``memory`` or ``sqlite``) replaces the file's. A file that cannot be used raises
    :class:`ScenarioDocumentError` before any step is played; a failed step is reported, not raised.
    """
    file = Path(path)
    document, lines = _load(file)
    if store is not None and store not in ("memory", "sqlite"):
        raise InvalidInput("store", f"memory or sqlite, not {store[:40]!r}")
    definition = _definition(document, file, lines)
    clock = ManualClock(document.start) if document.start is not None else ManualClock()
    report = ScenarioReport(name=document.name or file.name)
    with ExitStack() as stack:
        try:
            manager = stack.enter_context(_manager(document, store or document.store, definition, clock))
        except InvalidInput as error:  # a TTL the manager refuses
            raise ScenarioDocumentError([DocumentProblem.at(("ttl",), error.problem, lines)], str(file)) from error
        player = _Player(manager, stack.enter_context(TimeTravel(clock, manager)))
        for index, step in enumerate(document.steps, start=1):
            result = _play(player, index, step, lines.get(("steps", index - 1)))
            report.steps.append(result)
            if not result.ok:
                break
    return report
