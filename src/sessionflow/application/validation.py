"""Input validation at the edge of the facade: every argument a caller passes is checked here, once.

Each function either returns the value in the shape the engine keeps (a :class:`~uuid.UUID`, a frozen JSON
object, a set of state names...) or raises :class:`~sessionflow.errors.InvalidInput` naming the argument,
before anything is read or written. The write pipeline and the stores trust what comes out of here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from sessionflow.application.group_commit import GroupCommit
from sessionflow.application.ports import EventStore
from sessionflow.domain.definitions import DATA_EVENTS, LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.models import SessionStatus
from sessionflow.domain.values import (
    MAX_ID_LENGTH,
    MAX_LIST_LIMIT,
    FrozenList,
    freeze_json,
    to_utc,
    validate_identifier,
    validate_path,
    validate_paths,
    validate_text,
    validate_ttl,
)
from sessionflow.errors import InvalidInput

__all__ = [
    "UNSET",
    "CreateArguments",
    "ListFilters",
    "as_state",
    "check_expected",
    "check_int",
    "create_arguments",
    "created_range",
    "decode_cursor",
    "encode_cursor",
    "event_arguments",
    "fail_reason",
    "file_outcome",
    "group_commit",
    "json_args",
    "lifecycle_name",
    "list_arguments",
    "list_filters",
    "note_payload",
    "optional_id",
    "performer",
    "resolve_lifecycle",
    "statuses",
    "update_fields",
]

#: Keyword names the engine gives guards itself; an event argument may not replace them.
RESERVED_ARGS: Final = frozenset({"session", "model", "now", "event", "source", "target", "state", "machine",
                                  "event_data", "performer_id", "expected_version", "session_id"})
#: The largest ``offset`` a list accepts.
MAX_OFFSET: Final = 2**62


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: Marks an ``update`` argument that was not given (``None`` means "clear it").
UNSET: Final = _Unset()


def as_state(value: str) -> str:
    """A state value as the models keep it: the :class:`SessionStatus` member when there is one."""
    member: str = SessionStatus._value2member_map_.get(value, value)  # type: ignore[assignment]
    return member


def check_int(value: Any, field: str, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool) between ``low`` and ``high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")
    return value


def check_choice(value: Any, field: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(field, f"expected one of {', '.join(choices)}")
    return value


def check_expected(expected_version: Any) -> None:
    """An ``expected_version`` is ``None`` or a positive version number."""
    if expected_version is not None:
        check_int(expected_version, "expected_version", 1, MAX_OFFSET)


def performer(value: Any) -> str:
    """The ``performer_id`` every write requires."""
    return validate_identifier(value, "performer_id")


def optional_id(value: Any, field: str) -> str | None:
    return None if value is None else validate_identifier(value, field)


def json_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Event arguments as recorded in the payload (``args``), validated as a JSON object."""
    return {"args": freeze_json(args, "args")} if args else {}


def resolve_lifecycle(registry: LifecycleRegistry, lifecycle: LifecycleDefinition | str | None,
                      default: LifecycleDefinition) -> LifecycleDefinition:
    """The definition ``lifecycle`` names (``None``: ``default``); a definition given is registered."""
    if lifecycle is None:
        return default
    if isinstance(lifecycle, LifecycleDefinition):
        return registry.register(lifecycle)
    if isinstance(lifecycle, str):
        return registry.get(lifecycle)
    raise InvalidInput("lifecycle", "expected a LifecycleDefinition or the name of a registered one")


class CreateArguments:
    """The validated arguments of :meth:`~sessionflow.SessionManager.create`."""

    __slots__ = ("payload", "performer", "ttl")

    def __init__(self, payload: dict[str, Any], performer: str, ttl: timedelta) -> None:
        self.payload = payload
        self.performer = performer
        self.ttl = ttl


def create_arguments(*, performer_id: Any, user_id: Any, workspace_id: Any, module_name: Any,
                     file_paths: Iterable[Any] | None, metadata: Any, ttl: Any,
                     default_ttl: timedelta) -> CreateArguments:
    """The payload of a ``created`` event (without its deadlines), its performer and its TTL."""
    who = performer(performer_id)
    payload: dict[str, Any] = {
        "user_id": optional_id(user_id, "user_id"),
        "workspace_id": optional_id(workspace_id, "workspace_id"),
        "module_name": optional_id(module_name, "module_name"),
        "file_paths": FrozenList(validate_paths(file_paths)),
        "metadata": freeze_json(metadata, "metadata"),
    }
    return CreateArguments(payload, who, default_ttl if ttl is None else validate_ttl(ttl))


def event_arguments(event: Any, args: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments of :meth:`~sessionflow.SessionManager.send` and the payload recording them."""
    arguments = dict(args or {})
    for key in arguments:
        if not isinstance(key, str) or not key.isidentifier() or key in RESERVED_ARGS:
            raise InvalidInput("args", f"{str(key)[:40]!r} cannot be an event argument")
    if not isinstance(event, str) or not event:
        raise InvalidInput("event", "expected the name of an event")
    if event in DATA_EVENTS or event == "update":
        raise InvalidInput("event", f"use the {event} method: it takes its own arguments")
    failure = event == "fail" and "reason" in arguments
    reason = arguments.get("reason") if failure else None
    if isinstance(reason, str):  # stored as the session's failure reason: checked as fail() checks it
        reason = validate_text(reason, "reason", allow_empty=True).strip()
    payload = json_args(arguments)
    if failure:  # a reason that is not text is left to the lifecycle's guard, recorded as its checked JSON copy
        payload = {"reason": reason if isinstance(reason, str) else payload["args"]["reason"]}
    return arguments, payload


def fail_reason(reason: Any) -> str:
    """The ``reason`` of a ``fail`` as given (the lifecycle's guard refuses an empty one)."""
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("reason", f"expected a string, got {type(reason).__name__}")
    return validate_text(reason, "reason", allow_empty=True) if reason is not None else ""


def file_outcome(path: Any, error: Any) -> tuple[str, str | None]:
    """The ``path`` and ``error`` of :meth:`~sessionflow.SessionManager.record_file`."""
    return validate_path(path, "path"), None if error is None else validate_text(error, "error")


def note_payload(file_path: Any, memory_id: Any, status: Any) -> dict[str, Any]:
    """The payload of a ``note_added`` event."""
    return {
        "file_path": validate_path(file_path, "file_path"),
        "memory_id": optional_id(memory_id, "memory_id"),
        "status": validate_identifier(status, "status"),
    }


def update_fields(session_id: Any, current_file: Any, metadata: Any, status: Any,
                  reason: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """The fields an ``update`` changes, the state it moves to, and the reason of a move to a failed state."""
    fields: dict[str, Any] = {}
    if current_file is not UNSET:
        fields["current_file"] = None if current_file is None else validate_path(current_file, "current_file")
    if metadata is not UNSET:
        fields["metadata"] = freeze_json(metadata, "metadata")
    target: str | None = None
    if status is not None:
        if not isinstance(status, str) or not status or len(status) > 128:
            raise InvalidInput("status", f"unknown status {str(status)[:40]!r}", session_id=session_id)
        target = status
    if not fields and target is None:
        raise InvalidInput("update", "nothing to update: give current_file, metadata or status",
                           session_id=session_id)
    reason_text = None if reason is None else validate_text(reason, "reason", allow_empty=True)
    return fields, target, reason_text


def statuses(value: Any, registry: LifecycleRegistry) -> frozenset[str] | None:
    """Status filters: states of the registered lifecycles (an unknown one is a typo: ``InvalidInput``)."""
    if value is None:
        return None
    if isinstance(value, str | SessionStatus):
        items: Sequence[Any] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        items = list(value)
    else:
        raise InvalidInput("status", f"expected a status or a list of statuses, got {type(value).__name__}")
    known = registry.all_states()
    result: set[str] = set()
    for item in items:
        if not isinstance(item, str) or item not in known:
            raise InvalidInput("status", f"unknown status {str(item)[:40]!r}")
        result.add(as_state(item))
    return frozenset(result)


def list_filters(*, user_id: Any, workspace_id: Any, module_name: Any, limit: Any, offset: Any) -> None:
    """The filters and page of :meth:`~sessionflow.SessionManager.list` (the statuses: :func:`statuses`)."""
    for name, value in (("user_id", user_id), ("workspace_id", workspace_id), ("module_name", module_name)):
        if value is not None:
            validate_text(value, name, max_length=MAX_ID_LENGTH, allow_empty=True)
    check_int(limit, "limit", 1, MAX_LIST_LIMIT)
    check_int(offset, "offset", 0, MAX_OFFSET)



def lifecycle_name(value: Any) -> str | None:
    """The ``lifecycle`` filter of a list: the name sessions were created under (not looked up in the registry,
    so that sessions of a lifecycle another process registered can be listed too)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("lifecycle", f"expected the name of a lifecycle, got {type(value).__name__}")
    return validate_text(value, "lifecycle", max_length=128, allow_empty=True)


def _ceil_to_ms(value: datetime) -> datetime:
    """``value`` rounded up to the millisecond: creation times are whole milliseconds, so ``created_at >= t``
    and ``created_at < t`` mean the same with the rounded bound, on every store."""
    micro = value.microsecond % 1000
    return value if not micro else value + timedelta(microseconds=1000 - micro)


def created_range(created_after: Any, created_before: Any) -> tuple[datetime | None, datetime | None]:
    """The creation-time range of a list, ``created_after <= created_at < created_before``: aware datetimes
    (naive ones are refused), in UTC, rounded up to the millisecond; ``created_after`` may not be later than
    ``created_before``."""
    bounds: list[datetime | None] = []
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is None:
            bounds.append(None)
            continue
        if not isinstance(value, datetime):
            raise InvalidInput(name, f"expected a timezone-aware datetime, got {type(value).__name__}")
        try:
            bounds.append(_ceil_to_ms(to_utc(value, name)))
        except OverflowError:
            raise InvalidInput(name, "out of range") from None
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise InvalidInput("created_after", "is later than created_before")
    return low, high


#: A cursor of format 1 (issued before lists were in feed order): a format byte, the creation time in epoch
#: milliseconds, the id, and a check of those. Still accepted: it stands for its session, oldest first.
_CURSOR_V1: Final = struct.Struct(">Bq16s")
#: A cursor of format 2: a format byte, the id of the session it continues after, the direction (1: newest
#: first), and a check of those.
_CURSOR: Final = struct.Struct(">B16sB")
_CURSOR_FORMAT: Final = 2
_CHECK_BYTES: Final = 6
_CHECK_KEY: Final = b"sessionflow.list.cursor"


def _check(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_CHECK_BYTES, key=_CHECK_KEY).digest()


def encode_cursor(session_id: UUID, newest_first: bool = False) -> str:
    """The opaque cursor that continues a list right after the session of this id, in the list's direction
    (``newest_first``): URL-safe base64 without padding, 32 characters."""
    body = _CURSOR.pack(_CURSOR_FORMAT, session_id.bytes, 1 if newest_first else 0)
    return _text(body + _check(body))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(value: Any, newest_first: bool = False, field: str = "cursor") -> UUID | None:
    """The id of the session a cursor continues after (``None``: no cursor, the first page).

    A cursor that is not one this module made, or that was altered, is refused (``InvalidInput``), and so is a
    cursor of a list in the other direction than ``newest_first`` (a cursor of format 1 is of a list oldest
    first: the only order lists had when it was issued)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected a cursor string, got {type(value).__name__}")
    if len(value) > 64 or not value.isascii():
        raise InvalidInput(field, "not a list cursor")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "not a list cursor") from None
    layout = _CURSOR_V1 if raw[:1] == b"\x01" else _CURSOR
    body, check = raw[:layout.size], raw[layout.size:]
    if len(body) != layout.size or check != _check(body) or _text(raw) != value:  # one spelling per cursor
        raise InvalidInput(field, "not a list cursor, or an altered one")
    if layout is _CURSOR_V1:
        _version, _millis, sid = _CURSOR_V1.unpack(body)
        backwards = False
    else:
        version, sid, direction = _CURSOR.unpack(body)
        if version != _CURSOR_FORMAT or direction not in (0, 1):
            raise InvalidInput(field, "a cursor of an unknown format")
        backwards = direction == 1
    if backwards != newest_first:
        raise InvalidInput(field, "a cursor of a list " + ("newest first" if backwards else "oldest first")
                           + ": page on in that order (newest_first="
                           + ("true" if backwards else "false") + "), or restart paging")
    return UUID(bytes=sid)


@dataclass(frozen=True, slots=True)
class ListFilters:
    """The validated filters of a list (see :meth:`~sessionflow.SessionManager.list`)."""

    statuses: frozenset[str] | None = None
    user_id: str | None = None
    workspace_id: str | None = None
    module_name: str | None = None
    lifecycle: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: The list's direction: creation order, newest first when true.
    newest_first: bool = False


def list_arguments(registry: LifecycleRegistry, *, status: Any, user_id: Any, workspace_id: Any, module_name: Any,
                   lifecycle: Any, created_after: Any, created_before: Any, limit: Any,
                   offset: Any = 0, newest_first: Any = False) -> ListFilters:
    """Every filter and the page of a list, checked in the order of the signature."""
    statuses_ = statuses(status, registry)
    list_filters(user_id=user_id, workspace_id=workspace_id, module_name=module_name, limit=limit, offset=offset)
    low, high = created_range(created_after, created_before)
    if not isinstance(newest_first, bool):
        raise InvalidInput("newest_first", f"expected a bool, got {type(newest_first).__name__}")
    return ListFilters(statuses_, user_id, workspace_id, module_name, lifecycle_name(lifecycle), low, high,
                       newest_first)


def group_commit(store: EventStore, value: Any) -> GroupCommit | None:
    """The :class:`GroupCommit` that ``SessionManager(group_commit=value)`` asks for over ``store``, or ``None``."""
    if value is False or value is None:
        return None
    if value is True:
        return GroupCommit(store)
    return GroupCommit(store, max_group=check_int(value, "group_commit", 1, 100_000))
