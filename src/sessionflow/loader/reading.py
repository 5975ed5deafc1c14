"""Reading a lifecycle or scenario file: bytes to a parsed document, refusing what could hurt.

Owns :func:`read_document`: UTF-8, at most :data:`MAX_DOCUMENT_BYTES` (1 MiB), one YAML document without
anchors, aliases or custom tags (refused event by event, before anything is built, so nothing expands), nested
at most :data:`MAX_DOCUMENT_DEPTH` levels, no duplicate keys; JSON for a ``.json`` file. It also gives the
line of each key path of a YAML file, for the problems found later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionflow.loader.problems import DocumentProblem, ErrorFactory, KeyPath, Lines, render_path, show_value

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_DOCUMENT_DEPTH", "read_document"]

#: The largest lifecycle or scenario file read: 1 MiB.
MAX_DOCUMENT_BYTES = 1024 * 1024
#: How deeply mappings and lists may nest in a lifecycle or scenario file.
MAX_DOCUMENT_DEPTH = 64


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
                    raise _Refused((*path, str(key)), line, f"duplicate key {show_value(key)}")
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
                raise _Refused((), None, f"duplicate key {show_value(key)}")
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
        return error([DocumentProblem(render_path(where), problem, line)], name)

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
