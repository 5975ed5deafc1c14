"""Value rules shared by the whole domain: UTC timestamps, immutable JSON, identifiers and size limits.

Everything here is pure: it imports only the standard library. The limits are part of the public
contract (see ``docs/limits.md``); an input beyond one is refused with
:class:`~sessionflow.errors.InvalidInput` before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID, uuid4

from sessionflow.domain._compat import compact_encoder
from sessionflow.errors import InvalidInput

__all__ = [
    "MAX_FILE_PATHS",
    "MAX_ID_LENGTH",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_LIST_LIMIT",
    "MAX_PATH_LENGTH",
    "MAX_TEXT_LENGTH",
    "MAX_TTL",
    "MIN_TTL",
    "FrozenDict",
    "FrozenList",
    "check_string",
    "format_timestamp",
    "freeze_json",
    "parse_session_id",
    "thaw_json",
    "to_utc",
    "truncate_to_ms",
    "validate_identifier",
    "validate_path",
    "validate_text",
    "validate_ttl",
]

#: Longest user id, workspace id, module name, performer id, memory id or note status.
MAX_ID_LENGTH = 256
#: Longest file path.
MAX_PATH_LENGTH = 4096
#: Longest free text (a failure reason, an error message attached to a file).
MAX_TEXT_LENGTH = 8192
#: Most file paths a session may track.
MAX_FILE_PATHS = 10_000
#: Largest JSON object (metadata, event payload) once encoded as UTF-8 JSON.
MAX_JSON_BYTES = 64 * 1024
#: Deepest nesting of a JSON object.
MAX_JSON_DEPTH = 32
#: Largest page ``list`` returns.
MAX_LIST_LIMIT = 1000
#: Shortest and longest time-to-live a session may have.
MIN_TTL = timedelta(seconds=1)
MAX_TTL = timedelta(days=3650)


def _refuse(field: str, problem: str) -> NoReturn:
    raise InvalidInput(field, problem)


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses every mutation. Equal to the plain dict with the same items."""

    __slots__ = ()

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is immutable; build a new one instead")

    __setitem__ = _immutable
    __delitem__ = _immutable
    __ior__ = _immutable
    clear = _immutable
    pop = _immutable
    popitem = _immutable
    setdefault = _immutable
    update = _immutable

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(thaw_json(self), sort_keys=True))


class FrozenList(list[Any]):
    """A ``list`` that refuses every mutation. Equal to the plain list with the same items."""

    __slots__ = ()

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this list is immutable; build a new one instead")

    __setitem__ = _immutable
    __delitem__ = _immutable
    __iadd__ = _immutable
    __imul__ = _immutable
    append = _immutable
    clear = _immutable
    extend = _immutable
    insert = _immutable
    pop = _immutable
    remove = _immutable
    reverse = _immutable
    sort = _immutable

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(thaw_json(self), sort_keys=True))


_EMPTY = FrozenDict()


def check_string(value: str, field: str) -> str:
    """``value`` if every store can keep it, as text or inside JSON: no NUL character (PostgreSQL refuses one in
    a text column and in a JSON string alike) and no lone surrogate (not Unicode). The one rule for every
    string the engine stores — identifiers, paths, free text, JSON keys and JSON string values at any depth."""
    if "\x00" in value:
        _refuse(field, "contains a NUL character")
    if value.isascii():  # no surrogate can hide in ASCII
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _refuse(field, "text is not valid Unicode (lone surrogate)")
    return value


def _freeze(value: Any, field: str, depth: int) -> Any:
    if depth > MAX_JSON_DEPTH:
        _refuse(field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return check_string(value, field)
    if isinstance(value, float):
        if not math.isfinite(value):
            _refuse(field, "NaN and infinite numbers are not JSON")
        return value
    if isinstance(value, Mapping):
        items: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                _refuse(field, f"JSON object keys must be strings, got {type(key).__name__}")
            items[check_string(key, field)] = _freeze(item, field, depth + 1)
        return FrozenDict(items)
    if isinstance(value, list | tuple):
        return FrozenList(_freeze(item, field, depth + 1) for item in value)
    _refuse(field, f"{type(value).__name__} is not a JSON value")


#: A new random (version 4) UUID (:func:`uuid.uuid4`).
new_uuid4: Callable[[], UUID] = uuid4


#: ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` of engine-built (never circular) values.
compact_json: Callable[[Any], str] = compact_encoder()


def freeze_json(value: Any, field: str = "metadata", *, max_bytes: int = MAX_JSON_BYTES) -> FrozenDict:
    """Validate a JSON object and return a deeply immutable copy of it.

    Raises :class:`InvalidInput` for a non-object, non-string keys, NaN/inf, values that are not JSON, a key
    or a string with a NUL character or a lone surrogate (:func:`check_string`), nesting deeper than
    :data:`MAX_JSON_DEPTH` or an encoded size above ``max_bytes``.
    """
    if value is None:
        return _EMPTY
    if isinstance(value, FrozenDict):
        return value
    if not isinstance(value, Mapping):
        _refuse(field, f"expected a JSON object, got {type(value).__name__}")
    frozen = _freeze(value, field, 1)
    size = len(compact_json(frozen).encode("utf-8"))
    if size > max_bytes:
        _refuse(field, f"JSON object is {size} bytes, more than the {max_bytes}-byte limit")
    assert isinstance(frozen, FrozenDict)
    return frozen


def thaw_json(value: Any) -> Any:
    """Return plain, mutable dicts and lists for a frozen JSON value (for callers that want to edit)."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw_json(item) for item in value]
    return value


def to_utc(value: datetime, field: str = "timestamp") -> datetime:
    """Return ``value`` in UTC. A naive datetime is refused: its meaning would be a guess."""
    if not isinstance(value, datetime):
        _refuse(field, f"expected a datetime, got {type(value).__name__}")
    offset = value.utcoffset()
    if offset is None:
        _refuse(field, "naive datetime: give a timezone-aware one (UTC)")
    if value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


def truncate_to_ms(value: datetime) -> datetime:
    """Drop sub-millisecond precision: event timestamps are stored to the millisecond."""
    micro = value.microsecond - value.microsecond % 1000
    if micro == value.microsecond:
        return value
    return value.replace(microsecond=micro)


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z`` suffix, e.g. ``2026-01-02T03:04:05.678Z``."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def validate_text(
    value: Any, field: str, *, max_length: int = MAX_TEXT_LENGTH, allow_empty: bool = False
) -> str:
    """A string of at most ``max_length`` characters that every store can keep (:func:`check_string`: no NUL,
    no lone surrogate); blank is refused unless allowed."""
    if not isinstance(value, str):
        _refuse(field, f"expected a string, got {type(value).__name__}")
    if not allow_empty and (not value or value.isspace()):
        _refuse(field, "must not be empty or blank")
    if len(value) > max_length:
        _refuse(field, f"longer than {max_length} characters")
    return check_string(value, field)


#: A C0 control character or DEL (refused in identifiers and paths).
_CONTROL = re.compile("[\x00-\x1f\x7f]")


#: Identifiers found valid lately (the same few performers and users come back on every write).
_VALID_IDS: dict[str, None] = {}
_VALID_IDS_MAX = 4096


def validate_identifier(value: Any, field: str) -> str:
    """An identifier: non-blank text of at most :data:`MAX_ID_LENGTH` characters, no control characters."""
    if type(value) is str and value in _VALID_IDS:
        return value
    text = validate_text(value, field, max_length=MAX_ID_LENGTH)
    if _CONTROL.search(text) is not None:
        _refuse(field, "contains a control character")
    if type(text) is str:
        if len(_VALID_IDS) >= _VALID_IDS_MAX:
            _VALID_IDS.clear()
        _VALID_IDS[text] = None
    return text


def validate_path(value: Any, field: str = "file_path") -> str:
    """A file path as the caller names it: non-blank text, at most :data:`MAX_PATH_LENGTH` characters."""
    text = validate_text(value, field, max_length=MAX_PATH_LENGTH)
    if _CONTROL.search(text) is not None:
        _refuse(field, "contains a control character")
    return text


def validate_paths(values: Iterable[Any] | None, field: str = "file_paths") -> tuple[str, ...]:
    """A list of distinct file paths, at most :data:`MAX_FILE_PATHS` of them."""
    if values is None:
        return ()
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        _refuse(field, "expected a list of paths")
    paths = tuple(validate_path(v, field) for v in values)
    if len(paths) > MAX_FILE_PATHS:
        _refuse(field, f"more than {MAX_FILE_PATHS} paths")
    if len(set(paths)) != len(paths):
        _refuse(field, "contains the same path twice")
    return paths


def validate_ttl(value: Any, field: str = "ttl") -> timedelta:
    """A time-to-live between :data:`MIN_TTL` and :data:`MAX_TTL`."""
    if isinstance(value, bool) or not isinstance(value, timedelta):
        _refuse(field, f"expected a timedelta, got {type(value).__name__}")
    if value < MIN_TTL:
        _refuse(field, f"must be at least {MIN_TTL.total_seconds():g} seconds")
    if value > MAX_TTL:
        _refuse(field, f"must be at most {MAX_TTL.days} days")
    return value


def parse_session_id(value: Any, field: str = "session_id") -> UUID:
    """A session id: a :class:`~uuid.UUID` or its canonical string form."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return UUID(value)
        except ValueError:
            pass
    _refuse(field, f"not a valid UUID: {str(value)[:80]!r}")
