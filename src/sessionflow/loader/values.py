"""The value types and the base of the document formats: durations, names, times, JSON objects.

Owns :class:`Document` (unknown keys are errors, nothing is converted from another type), the annotated types
the lifecycle and scenario formats share (:data:`Duration`, :data:`After`, :data:`Names`, :data:`Timestamp`,
:data:`JsonObject`), :func:`duration_field`, :func:`parse_duration`, :func:`json_schema` and :class:`BadValue`
(a value a format refuses; its text is the problem shown).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from sessionflow.domain.durations import parse_duration as _parse_duration
from sessionflow.errors import InvalidInput
from sessionflow.loader.problems import DocumentProblem, LifecycleDocumentError, show_value

__all__ = ["DURATION_SCHEMA", "After", "BadValue", "Document", "Duration", "JsonObject", "Names", "Timestamp",
           "duration_field", "json_schema", "parse_duration"]


class BadValue(ValueError):
    """A value the format refuses; its text is the problem shown."""


def _duration(value: Any) -> timedelta:
    try:
        return _parse_duration(value, "duration")
    except InvalidInput as error:
        raise BadValue(error.problem) from None


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
            raise BadValue(f"{show_value(value)} is not an ISO 8601 time (e.g. 2030-01-01T09:00:00Z)") from None
    if not isinstance(value, datetime):
        raise BadValue("expected an ISO 8601 time with a time zone (e.g. 2030-01-01T09:00:00Z), got "
                       f"{show_value(value)}")
    if value.utcoffset() is None:
        raise BadValue(f"{value.isoformat()} has no time zone: give one (e.g. 2030-01-01T09:00:00Z)")
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise BadValue("mapping keys must be text")
            pending += item.values()
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadValue(f"{item!r} is not a JSON number")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise BadValue(f"{show_value(item)} is not a JSON value (text, number, true/false, null, list or mapping)")
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
