"""A parsed document checked against its format (a pydantic model), each mistake located.

Owns :func:`validate_document`: pydantic's errors become problems
(:class:`~sessionflow.loader.problems.DocumentProblem`) with the key path as the file writes it, the line, and
a message a person can act on (an unknown key names the closest allowed one, or lists them).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sessionflow.loader.problems import DocumentProblem, ErrorFactory, KeyPath, Lines, show_value

__all__ = ["validate_document"]

M = TypeVar("M", bound=BaseModel)


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
        text = f"unknown keys: {show_value(path[-1])}" + (f" (did you mean {close[0]!r}?)" if close else
                                                     f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif kind == "missing":
        text = hints.get(str(loc[-1]), f"missing required key {str(loc[-1])!r}")
    elif kind == "value_error":
        text = str(item.get("ctx", {}).get("error", item["msg"]))
    else:
        text = f"{item['msg']} (got {show_value(item.get('input'))})"
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
