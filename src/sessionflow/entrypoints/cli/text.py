"""Text for the command line's output: results as JSON, and the pieces the human-readable views are made of.

Owns :func:`jsonable`, :func:`dumps` and :func:`session_json` (results as JSON), :func:`escape` (rich's markup
escaped, rich imported only then), :func:`styled` (whether rich would style a stream) and the small formatters
of statuses, times and values that :mod:`~.render` and :mod:`~.tables` share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from uuid import UUID

from sessionflow.domain.values import format_timestamp

if TYPE_CHECKING:
    from sessionflow import Session

__all__ = ["dumps", "escape", "jsonable", "session_json", "short", "status_markup", "status_value", "styled",
           "when"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: timestamps in the library's format, models as their JSON dump."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, UUID):
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def dumps(data: Any) -> str:
    """Compact one-line JSON of plain data."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


#: Each class met in a session: its field names in the order it declares them (a pydantic model), else ``None``.
_FIELD_ORDER: dict[type[Any], list[str] | None] = {}


def _order_of(kind: type[Any]) -> list[str] | None:
    try:
        return _FIELD_ORDER[kind]
    except KeyError:
        fields = getattr(kind, "model_fields", None)
        order = _FIELD_ORDER[kind] = list(fields) if isinstance(fields, dict) else None
        return order


def _out_of_order(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return any(_out_of_order(item) for item in value)
    order = _order_of(type(value))
    if order is None:
        return False
    values = value.__dict__
    return list(values) != order or any(_out_of_order(item) for item in values.values())


def in_field_order(value: Any) -> Any:
    """``value`` with every pydantic model in it (nested ones, and those in lists, too) holding its fields in the
    order its class declares them: a model whose fields were set in another order is rebuilt (``model_construct``,
    same values, same fields set); a value already in order is returned as it is."""
    if not _out_of_order(value):
        return value
    if isinstance(value, list | tuple):
        return type(value)(in_field_order(item) for item in value)
    inner = {name: in_field_order(item) for name, item in value.__dict__.items()}
    return type(value).model_construct(_fields_set=value.model_fields_set, **inner)


def session_json(session: Session) -> str:
    """A session as one line of JSON, as every ``--json`` command prints it (``apply`` too): the fields of
    ``Session.model_dump(mode="json")``, serialised by pydantic, always in the model's order.

    Pydantic writes the fields in the order they were set, and a store may build a session with them in another
    order (the SQL stores' row reader does); such a session is put in the model's order first
    (:func:`in_field_order`), so that one session always prints one line: a write answered from its idempotency
    key prints what the first run printed, whichever way each built the session."""
    return in_field_order(session).model_dump_json()  # type: ignore[no-any-return]


def escape(text: str) -> str:
    """``text`` with rich's markup escaped (``[`` of anything that looks like a tag), for a markup string."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def styled(stream: TextIO) -> bool:
    """Whether rich would style what goes to ``stream``: a terminal, or ``FORCE_COLOR`` set."""
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


_STATUS_STYLE = {
    "pending": "yellow",
    "in_progress": "cyan",
    "completed": "green",
    "failed": "red",
    "expired": "magenta",
}


def status_value(status: Any) -> str:
    """A status (an enum member or its value) as its text."""
    return str(getattr(status, "value", status))


def status_markup(status: Any, *, deleted: bool = False) -> str:
    """A status in rich markup, coloured (``(deleted)`` after it when ``deleted``)."""
    if status is None:
        return ""
    value = status_value(status)
    text = f"[{_STATUS_STYLE.get(value, 'white')}]{escape(value)}[/]"
    return text + (" [dim](deleted)[/]" if deleted else "")


def when(value: datetime | None) -> str:
    """A time in the library's format, or nothing."""
    return "" if value is None else format_timestamp(value)


def short(value: Any) -> str:
    """A value as one short text: a string as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return dumps(jsonable(value))
