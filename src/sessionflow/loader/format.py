"""The lifecycle file format: :class:`LifecycleDocument` and its parts, as pydantic models.

Owns :class:`StateSpec`, :class:`TransitionSpec`, :class:`TimeoutSpec` and :class:`LifecycleDocument` (what a
lifecycle file may say, with the checks of each value) and :func:`lifecycle_schema`, their JSON Schema for
editors (``sessionflow schema lifecycle``). What refers across the document (a transition's states, a
timeout's event) is checked when it is built (:mod:`~sessionflow.loader.building`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from statemachine import StateMachine

from sessionflow.loader.problems import show_value
from sessionflow.loader.values import After, BadValue, Document, JsonObject, Names, json_schema

__all__ = ["HINTS", "WHAT", "LifecycleDocument", "StateSpec", "TimeoutSpec", "TransitionSpec", "lifecycle_schema"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
_MAX_VERSION = 2**31 - 1


def _identifier(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise BadValue(f"{show_value(value)}: use letters, digits and underscores (up to 100), not starting with a "
                       "digit")
    if value.startswith("__") or hasattr(StateMachine, value):
        raise BadValue(f"{value!r} is reserved (a python-statemachine attribute): choose another name")
    return value


def _lifecycle_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise BadValue(f"{show_value(value)}: use letters, digits, '_', '.' and '-' (up to 128), starting with a "
                       "letter")
    return value


def _document_version(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_VERSION:
        raise BadValue(f"version must be a positive integer (up to {_MAX_VERSION}), not {show_value(value)}")
    return value


def _old_version(value: Any) -> Any:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)  # JSON keys are text
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_VERSION:
        raise BadValue(f"a version is a positive integer (up to {_MAX_VERSION}), not {show_value(value)}")
    return value


def _some(message: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not value:
            raise BadValue(message)
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
            raise BadValue("a transition needs 'from' and 'to'")
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


#: The messages of a missing key, and of a document that is not a mapping.
HINTS = {"states": "a lifecycle needs states", "name": "a lifecycle needs a name"}
WHAT = "a lifecycle document is a mapping"


def lifecycle_schema() -> dict[str, Any]:
    """The JSON Schema of lifecycle files (``sessionflow schema lifecycle``)."""
    return json_schema(LifecycleDocument, "sessionflow lifecycle")
