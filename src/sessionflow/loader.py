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

The format is :class:`LifecycleDocument`, a pydantic model (``sessionflow schema lifecycle`` prints its JSON
Schema). Files are read by :func:`read_document`, which scenario files share: UTF-8, at most
:data:`MAX_DOCUMENT_BYTES` (1 MiB), one YAML document without anchors, aliases or custom tags, nested at most
:data:`MAX_DOCUMENT_DEPTH` levels, no duplicate keys. Every mistake is a :class:`LifecycleDocumentError` that
lists each problem with the file, the key path (``timeouts.in_review.after``) and, for YAML, the line.

Longer than 400 lines: it holds the whole way from a file's bytes to a definition — reading, the format, the
messages that locate each mistake and the building of the machine — which change together; the scenario
format reuses its reading and its value types.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from statemachine import State, StateMachine

from sessionflow.domain.definitions import LifecycleDefinition, StateTimeout
from sessionflow.domain.durations import parse_duration as _parse_duration
from sessionflow.errors import InvalidInput, LifecycleDefinitionError

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_DOCUMENT_DEPTH", "After", "Document", "DocumentProblem", "Duration",
           "JsonObject", "KeyPath", "LifecycleDocument", "LifecycleDocumentError", "Lines", "Names", "Timestamp",
           "definition_from_document", "describe_problems", "duration_field", "guard", "import_modules",
           "json_schema", "lifecycle_schema", "load_definition", "ordered_problems", "parse_duration",
           "problems_dict", "read_document", "registered_guards", "validate_document"]

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)
#: A key path inside a document: mapping keys (as text) and list indices.
KeyPath = tuple[str | int, ...]
#: The line (from 1) of each key path of a YAML document.
Lines = dict[KeyPath, int]
#: How a caller's error is made from the problems and the file (``None`` for a document given in memory).
ErrorFactory = Callable[[Sequence["DocumentProblem"], "str | None"], Exception]

#: The largest lifecycle or scenario file read: 1 MiB.
MAX_DOCUMENT_BYTES = 1024 * 1024
#: How deeply mappings and lists may nest in a lifecycle or scenario file.
MAX_DOCUMENT_DEPTH = 64

_guards: dict[str, Callable[..., Any]] = {}
_guards_lock = threading.Lock()
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
_MAX_VERSION = 2**31 - 1
_SHOWN_PROBLEMS = 20


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
    """A copy of the guards and validators registered with :func:`guard`, by name."""
    with _guards_lock:
        return dict(_guards)


def import_modules(names: Any) -> None:
    """Import the modules a document lists under ``imports`` (they register guards with :func:`guard`).

    A document that imports modules runs code: load documents you trust, as you would import Python.
    """
    if names is None:
        return
    import importlib

    for name in [names] if isinstance(names, str) else list(names):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise LifecycleDefinitionError(f"imports: cannot import {name!r}: {error}") from error


# ---------------------------------------------------------------------------------------------- problems


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a very large number"
    return text if len(text) <= 60 else text[:57] + "..."


def _render(path: KeyPath) -> str:
    """``("events", "go", 0, "to")`` -> ``events.go[0].to``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part[:60]}" if text else part[:60])
    return text


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    """One mistake in a document: its key path (``timeouts.review.after``; empty for the whole document),
    what is wrong, and its line (from 1) when the file is YAML."""

    path: str
    problem: str
    line: int | None = None

    @classmethod
    def at(cls, path: KeyPath, problem: str, lines: Lines) -> DocumentProblem:
        """The problem at ``path``, on the line of ``path`` or of its nearest enclosing key."""
        for end in range(len(path), -1, -1):
            key = tuple(p if isinstance(p, int) else str(p) for p in path[:end])
            if key in lines:
                return cls(_render(path), problem, lines[key])
        return cls(_render(path), problem)

    def describe(self, file: str | None) -> str:
        """``FILE:LINE: PATH: PROBLEM``, leaving out what is not known."""
        where = f"{file}:{self.line}" if file and self.line else file or (f"line {self.line}" if self.line else "")
        return ": ".join(part for part in (where, self.path, self.problem) if part)


def describe_problems(file: str | None, problems: Sequence[DocumentProblem]) -> str:
    """One line: each problem located (at most 20, then how many more), separated by ``; ``."""
    text = "; ".join(p.describe(file) for p in problems[:_SHOWN_PROBLEMS]) or (file or "invalid document")
    more = len(problems) - _SHOWN_PROBLEMS
    return text + (f"; and {more} more problems" if more > 0 else "")


def ordered_problems(problems: Sequence[DocumentProblem]) -> tuple[DocumentProblem, ...]:
    """The problems in the order of their lines (those without a line last, in their order)."""
    return tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))


def problems_dict(file: str | None, problems: Sequence[DocumentProblem]) -> dict[str, Any]:
    """The JSON form of located problems: ``{"file": ..., "problems": [{"path", "line", "problem"}, ...]}``."""
    return {"file": file, "problems": [{"path": p.path, "line": p.line, "problem": p.problem} for p in problems]}


class LifecycleDocumentError(LifecycleDefinitionError):
    """A lifecycle document or file that cannot be used. ``file`` is the file (``None`` for a document given
    in memory); ``problems`` lists each :class:`DocumentProblem` — key path, line, what is wrong — and the
    message shows them on one line: ``review.yaml:12: timeouts.in_review.after: 'soon' is not a duration ...``.
    """

    def __init__(self, problems: Sequence[DocumentProblem], file: str | None = None) -> None:
        self.file = file
        self.problems = ordered_problems(problems)
        super().__init__(describe_problems(file, self.problems))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(problems_dict(self.file, self.problems))
        return data


# ---------------------------------------------------------------------------------------------- reading


class _Refused(Exception):
    def __init__(self, path: KeyPath, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.path, self.line, self.problem = path, line, problem


_NO_KEY = object()


@dataclass
class _Open:
    """A mapping or list being read, at ``path``; ``key``: the mapping's key whose value comes next."""

    path: KeyPath
    value: dict[Any, Any] | list[Any]
    key: Any = _NO_KEY

    def child(self) -> KeyPath:
        return (*self.path, len(self.value)) if isinstance(self.value, list) else (*self.path, str(self.key))

    def add(self, value: Any) -> None:
        if isinstance(self.value, list):
            self.value.append(value)
        else:
            self.value[self.key] = value
            self.key = _NO_KEY


def _yaml(text: str) -> tuple[Any, Lines]:
    """The document of ``text``, built event by event: anchors, aliases and tags other than YAML's own
    mappings and lists are refused before anything is built, so nothing expands."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    constructors, scalar_node = loader.yaml_constructors, yaml.ScalarNode
    mapping_start, scalar_event = yaml.MappingStartEvent, yaml.ScalarEvent
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    skipped = (yaml.StreamStartEvent, yaml.DocumentEndEvent)
    lines: Lines = {}
    stack: list[_Open] = []
    root: list[Any] = []
    documents, line = 0, 1
    path: KeyPath = ()
    collection_tags = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}

    def scalar(event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = loader.resolve(scalar_node, event.value, event.implicit)
        if tag == "tag:yaml.org,2002:str":
            return event.value
        construct = constructors.get(tag)
        if construct is None:
            raise _Refused(path, line, f"the YAML tag {tag!r} is not allowed in these files")
        return construct(loader, scalar_node(tag, event.value, event.start_mark, event.end_mark, style=event.style))

    try:
        while not isinstance(event := loader.get_event(), yaml.StreamEndEvent):
            kind = type(event)
            line = event.start_mark.line + 1
            if kind in skipped:
                continue
            if kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _Refused((), line, "a file holds one YAML document (found a second '---')")
                continue
            if kind in ends:
                done = stack.pop()
                (stack[-1].add if stack else root.append)(done.value)
                continue
            top = stack[-1] if stack else None
            at_key = top is not None and top.key is _NO_KEY and isinstance(top.value, dict)
            path = () if top is None else top.path if at_key else top.child()
            if kind is yaml.AliasEvent:
                raise _Refused(path, line, f"YAML aliases (*{event.anchor}) are not allowed in these files")
            if event.anchor is not None:
                raise _Refused(path, line, f"YAML anchors (&{event.anchor}) are not allowed in these files")
            if top is not None and at_key:
                if kind is not scalar_event:
                    raise _Refused(path, line, "a key must be a plain value, not a mapping or a list")
                key = scalar(event)
                if key in top.value:
                    raise _Refused((*path, str(key)), line, f"duplicate key {_show(key)}")
                top.key = key
                lines[(*path, str(key))] = line
                continue
            if top is None or isinstance(top.value, list):
                lines[path] = line
            if kind is scalar_event:
                value = scalar(event)
                (top.add if top is not None else root.append)(value)
                continue
            if event.tag not in collection_tags:
                raise _Refused(path, line, f"the YAML tag {event.tag!r} is not allowed in these files")
            if len(stack) >= MAX_DOCUMENT_DEPTH:
                raise _Refused(path, line, f"nested too deeply (more than {MAX_DOCUMENT_DEPTH} levels)")
            stack.append(_Open(path, {} if kind is mapping_start else []))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        words = " ".join(filter(None, [getattr(error, "context", None), getattr(error, "problem", None)]))
        raise _Refused(path, mark.line + 1 if mark is not None else line,
                       f"not valid YAML: {words or error}") from None
    except (ValueError, OverflowError, TypeError, RecursionError) as error:  # e.g. int() of 5000 digits
        raise _Refused(path, line, f"not valid YAML: {error}") from None
    finally:
        loader.dispose()
    return (root[0] if root else None), lines


def _too_deep(data: Any) -> bool:
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DOCUMENT_DEPTH:
                return True
            pending += [(item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)]
    return False


def _json(text: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise _Refused((), None, f"duplicate key {_show(key)}")
            found[key] = value
        return found

    try:
        data = json.loads(text, object_pairs_hook=unique)
    except RecursionError:
        raise _Refused((), None, "not valid JSON: nested too deeply") from None
    except json.JSONDecodeError as error:
        raise _Refused((), error.lineno, f"not valid JSON: {error.msg} (column {error.colno})") from None
    except ValueError as error:
        raise _Refused((), None, f"not valid JSON: {error}") from None
    if _too_deep(data):
        raise _Refused((), None, f"not valid JSON: nested too deeply (more than {MAX_DOCUMENT_DEPTH} levels)")
    return data


def read_document(path: str | Path, error: ErrorFactory) -> tuple[Any, Lines]:
    """The parsed document of a ``.json`` file, or of a YAML file (any other name), and the line of each key
    path (YAML only). Anything that stops it — unreadable, larger than :data:`MAX_DOCUMENT_BYTES`, not UTF-8,
    not valid YAML or JSON, a YAML anchor or alias, a duplicate key — raises ``error(problems, file)``."""
    file, name = Path(path), str(path)

    def fail(problem: str, where: KeyPath = (), line: int | None = None) -> Exception:
        return error([DocumentProblem(_render(where), problem, line)], name)

    try:
        regular = not file.exists() or file.is_file()  # not a folder, a device or a pipe that never ends
        if regular:
            with file.open("rb") as stream:
                data = stream.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, ValueError) as problem:  # ValueError: a NUL in the name
        raise fail(f"cannot read: {getattr(problem, 'strerror', None) or problem}") from None
    if not regular:
        raise fail("cannot read: not a regular file")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise fail(f"larger than {MAX_DOCUMENT_BYTES // 1024 // 1024} MiB, the limit for lifecycle and scenario files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise fail(f"not UTF-8 (invalid byte 0x{data[problem.start]:02x} at byte {problem.start + 1}, "
                   f"line {line})") from None
    try:
        return (_json(text), {}) if file.suffix.lower() == ".json" else _yaml(text)
    except _Refused as refused:
        raise fail(refused.problem, refused.path, refused.line) from None


# ---------------------------------------------------------------------------------------------- validation


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _keys_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys the format allows in the mapping at ``loc`` (empty if it is not a model's)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in fields:
                return []
            current = fields[part].annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def _data_path(loc: Sequence[Any], data: Any) -> KeyPath:
    """The key path of pydantic's ``loc`` in ``data`` (list indices stay numbers, mapping keys become text)."""
    path: list[str | int] = []
    for part in loc:
        if part == "[key]":
            break
        if isinstance(data, list) and isinstance(part, int):
            path.append(part)
            data = data[part] if 0 <= part < len(data) else None
        else:
            path.append(str(part))
            data = data.get(part) if isinstance(data, Mapping) else None
    return tuple(path)


def _problem(model: type[BaseModel], data: Any, item: Any, lines: Lines, hints: Mapping[str, str],
             allowed_keys: dict[tuple[Any, ...], list[str]], suggest: bool) -> DocumentProblem:
    loc, kind = tuple(item["loc"]), item["type"]
    refused_key = loc[-1:] == ("[key]",)  # then the key as written (pydantic shows a key `true` as 1)
    path = (*_data_path(loc[:-2], data), str(item.get("input"))) if refused_key else _data_path(loc, data)
    if kind == "extra_forbidden":
        allowed = allowed_keys.get(loc[:-1])
        if allowed is None:
            allowed = allowed_keys[loc[:-1]] = _keys_at(model, loc[:-1])
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6) if suggest else []
        text = f"unknown keys: {_show(path[-1])}" + (f" (did you mean {close[0]!r}?)" if close else
                                                     f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif kind == "missing":
        text = hints.get(str(loc[-1]), f"missing required key {str(loc[-1])!r}")
    elif kind == "value_error":
        text = str(item.get("ctx", {}).get("error", item["msg"]))
    else:
        text = f"{item['msg']} (got {_show(item.get('input'))})"
        if kind == "string_type" and isinstance(item.get("input"), bool):
            text += "; YAML reads yes, no, on, off, true and false as booleans: quote the name"
    return DocumentProblem.at(path, text, lines)


def validate_document(model: type[M], data: Any, *, file: str | None, lines: Lines, error: ErrorFactory,
                      hints: Mapping[str, str], what: str) -> M:
    """``data`` as a ``model`` (a :class:`Document`); each mistake located, raised as ``error(problems, file)``.

    ``hints`` replace the message of a missing key (``{"steps": "a scenario needs a list of steps"}``);
    ``what`` is the message when ``data`` is not a mapping.
    """
    if not isinstance(data, Mapping):
        raise error([DocumentProblem("", what, lines.get(()))], file)
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        allowed_keys: dict[tuple[Any, ...], list[str]] = {}
        problems = [_problem(model, data, item, lines, hints, allowed_keys, suggest=index < 100)
                    for index, item in enumerate(invalid.errors(include_url=False, include_input=True))]
        raise error(problems, file) from None


# ---------------------------------------------------------------------------------------------- value types


class _Bad(ValueError):
    """A value the format refuses; its text is the problem shown."""


def _duration(value: Any) -> timedelta:
    try:
        return _parse_duration(value, "duration")
    except InvalidInput as error:
        raise _Bad(error.problem) from None


def parse_duration(value: Any, where: str) -> timedelta:
    """A duration of a lifecycle document (:func:`sessionflow.domain.durations.parse_duration`'s grammar:
    ``90``, ``"90s"``, ``"500ms"``, ``"1h30m"``, ``"1.5h"``, ``"2d"``); a bad one is a
    :class:`LifecycleDocumentError` at ``where``."""
    try:
        return _parse_duration(value, where)
    except InvalidInput as error:
        raise LifecycleDocumentError([DocumentProblem(where, error.problem)]) from None


def _after(value: Any) -> timedelta | None:
    return None if value is None or (isinstance(value, str) and value.strip() == "ttl") else _duration(value)


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad(f"{_show(value)} is not an ISO 8601 time (e.g. 2030-01-01T09:00:00Z)") from None
    if not isinstance(value, datetime):
        raise _Bad(f"expected an ISO 8601 time with a time zone (e.g. 2030-01-01T09:00:00Z), got {_show(value)}")
    if value.utcoffset() is None:
        raise _Bad(f"{value.isoformat()} has no time zone: give one (e.g. 2030-01-01T09:00:00Z)")
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise _Bad("mapping keys must be text")
            pending += item.values()
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, float) and not math.isfinite(item):
            raise _Bad(f"{item!r} is not a JSON number")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise _Bad(f"{_show(item)} is not a JSON value (text, number, true/false, null, list or mapping)")
    return value


DURATION_SCHEMA: dict[str, Any] = {
    "description": "A duration: a number of seconds, or number-unit parts largest first (d, h, m, s, ms), e.g. "
                   "90, 90s, 500ms, 15m, 2h, 1d, 1h30m, 1.5h; positive, at most 36500d.",
    "anyOf": [{"type": "string", "examples": ["90s", "500ms", "15m", "1h30m", "1.5h", "2d"]},
              {"type": "number", "exclusiveMinimum": 0}],
}
#: A duration in the grammar of :mod:`sessionflow.domain.durations` (text or a number of seconds).
Duration = Annotated[timedelta, BeforeValidator(_duration), WithJsonSchema(DURATION_SCHEMA)]
#: A state timeout's ``after``: a duration, or ``ttl`` / null for the session's own TTL.
After = Annotated[timedelta | None, BeforeValidator(_after),
                  WithJsonSchema({"anyOf": [DURATION_SCHEMA, {"const": "ttl"}, {"type": "null"}]})]
#: A name or a list of names (``cond: has_title`` or ``cond: [has_title, has_reviewer]``).
Names = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_names),
                  WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1},
                                            {"type": "array", "items": {"type": "string", "minLength": 1}}]})]
#: A time with a time zone: ISO 8601 text or a YAML timestamp.
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})]
#: A mapping of JSON values (event arguments).
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


def duration_field(default: str) -> Any:
    """A field whose default is the duration ``default`` (shown as that text in the JSON Schema)."""
    return Field(default=_parse_duration(default, "default"), json_schema_extra={"default": default})


class Document(BaseModel):
    """A file format: unknown keys are errors, and values are never converted from another type (``"2"`` is
    not the version 2, ``"no"`` is not ``false``), except durations, which are text or numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """``model``'s JSON Schema (draft 2020-12) under ``title``, for editors."""
    def plain(node: Any) -> Any:  # the docstrings' ``code`` marks, for editors that show them as text
        if isinstance(node, dict):
            return {k: v.replace("``", "") if k == "description" and isinstance(v, str) else plain(v)
                    for k, v in node.items()}
        return [plain(item) for item in node] if isinstance(node, list) else node

    schema = plain(model.model_json_schema(by_alias=True))
    schema.pop("title", None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}


# ---------------------------------------------------------------------------------------------- the format


def _identifier(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise _Bad(f"{_show(value)}: use letters, digits and underscores (up to 100), not starting with a digit")
    if value.startswith("__") or hasattr(StateMachine, value):
        raise _Bad(f"{value!r} is reserved (a python-statemachine attribute): choose another name")
    return value


def _lifecycle_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise _Bad(f"{_show(value)}: use letters, digits, '_', '.' and '-' (up to 128), starting with a letter")
    return value


def _document_version(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_VERSION:
        raise _Bad(f"version must be a positive integer (up to {_MAX_VERSION}), not {_show(value)}")
    return value


def _old_version(value: Any) -> Any:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)  # JSON keys are text
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_VERSION:
        raise _Bad(f"a version is a positive integer (up to {_MAX_VERSION}), not {_show(value)}")
    return value


def _some(message: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not value:
            raise _Bad(message)
        return value

    return check


_Identifier = Annotated[str, AfterValidator(_identifier)]
_Text = Annotated[str, Field(min_length=1)]


class StateSpec(Document):
    """A state: ``{}``, ``{initial: true}`` (exactly one), ``{final: true}``; ``name`` is a display name."""

    initial: bool = False
    final: bool = False
    name: str | None = None


class TransitionSpec(Document):
    """One transition of an event: ``{from: a or [a, b], to: c, cond: [...], unless: [...], validators: [...]}``.

    ``cond``, ``unless`` and ``validators`` name registered guards; ``internal: true`` makes a transition from
    a state to itself run no exit or entry actions.
    """

    from_: Annotated[Names, AfterValidator(_some("a transition needs 'from' and 'to'"))] = Field(alias="from")
    to: str
    cond: Names = []
    unless: Names = []
    validators: Names = []
    internal: bool = False

    @model_validator(mode="before")
    @classmethod
    def _needs_ends(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("from" not in data or "to" not in data):
            raise _Bad("a transition needs 'from' and 'to'")
        return data


class TimeoutSpec(Document):
    """A state's timeout: after ``after`` (a duration; ``ttl`` or left out: the session's TTL) in the state,
    the engine sends ``event`` with ``args``; ``restart: false`` keeps the running deadline on re-entry."""

    event: _Text
    after: After = None
    args: JsonObject = {}
    restart: bool = True


class LifecycleDocument(Document):
    """A lifecycle file: its name and version, states, events (transitions), state timeouts, the names events
    are recorded under, and the state mappings from older versions."""

    name: Annotated[str, AfterValidator(_lifecycle_name)]
    version: Annotated[int, BeforeValidator(_document_version), Field(ge=1, le=_MAX_VERSION)] = 1
    description: str | None = None
    imports: Names = []
    states: Annotated[dict[_Identifier, StateSpec], AfterValidator(_some("a lifecycle needs states"))]
    events: dict[_Identifier, Annotated[list[TransitionSpec],
                                       AfterValidator(_some("an event needs at least one transition"))]] = {}
    timeouts: dict[str, TimeoutSpec] = {}
    event_names: dict[str, _Text] = {}
    migrations: dict[Annotated[int, BeforeValidator(_old_version)], dict[str, str]] = {}


_HINTS = {"states": "a lifecycle needs states", "name": "a lifecycle needs a name"}
_WHAT = "a lifecycle document is a mapping"


def lifecycle_schema() -> dict[str, Any]:
    """The JSON Schema of lifecycle files (``sessionflow schema lifecycle``)."""
    return json_schema(LifecycleDocument, "sessionflow lifecycle")


# ---------------------------------------------------------------------------------------------- building


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
                              hints=_HINTS, what=_WHAT)
    return _definition(model, guards, None, {})


def load_definition(path: str | Path, guards: Mapping[str, Callable[..., Any]] | None = None) -> LifecycleDefinition:
    """Load a lifecycle from a ``.yaml``/``.yml`` or ``.json`` file (UTF-8, at most 1 MiB, no YAML aliases).

    A file that cannot be read or used is a :class:`LifecycleDocumentError` naming the file and, for each
    problem, the key path and (YAML) the line.
    """
    data, lines = read_document(path, LifecycleDocumentError)
    model = validate_document(LifecycleDocument, data, file=str(path), lines=lines, error=LifecycleDocumentError,
                              hints=_HINTS, what=_WHAT)
    return _definition(model, guards, str(path), lines)
