"""What the console's templates show, computed apart from them: times and durations as people read them, the
timeline of a history, the events a session may be sent, the filters of the sessions table read from a query
string, and the windows of deadlines on offer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sessionflow import InvalidInput, Session, SessionEvent, SessionManager
from sessionflow.domain.definitions import DATA_EVENTS

__all__ = ["WINDOWS", "Filters", "Step", "actions_of", "duration", "stamp", "timeline"]

#: The windows of the "waiting on a deadline" page: their query value and what they read as.
WINDOWS: dict[str, tuple[timedelta, str]] = {
    "5m": (timedelta(minutes=5), "5 minutes"), "15m": (timedelta(minutes=15), "15 minutes"),
    "1h": (timedelta(hours=1), "1 hour"), "6h": (timedelta(hours=6), "6 hours"),
    "24h": (timedelta(hours=24), "24 hours"), "7d": (timedelta(days=7), "7 days"),
}


def stamp(value: datetime | None) -> str:
    """A time as ``2030-01-01 12:00:05 UTC`` (empty for none)."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """A duration as ``2 h 5 min``, ``4 min 10 s``, ``12 s`` or ``0.350 s``."""
    if seconds < 1:
        return f"{seconds:.3f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a history as the timeline shows it."""

    event: SessionEvent
    since_previous: str
    payload: str


def timeline(events: list[SessionEvent]) -> list[Step]:
    """The history's events, each with the time since the one before it and its payload as JSON."""
    steps = []
    previous: datetime | None = None
    for event in events:
        since = "" if previous is None else "+" + duration((event.timestamp - previous).total_seconds())
        payload = json.dumps(event.model_dump(mode="json")["payload"], ensure_ascii=False, sort_keys=True)
        steps.append(Step(event, since, "" if payload == "{}" else payload))
        previous = event.timestamp
    return steps


def actions_of(manager: SessionManager, session: Session) -> list[str]:
    """What the session's page offers to do now: each event of its lifecycle with a transition from the current
    state (its guards decide when it is sent; expiry is the engine's), ``touch`` while it is live, and
    ``delete`` until it is deleted."""
    if session.deleted_at is not None:
        return []
    compiled = manager.registry.get(session.lifecycle, session.lifecycle_version).compiled
    moves = [e for e in compiled.allowed_events(str(session.status)) if e not in DATA_EVENTS and e != "expire"]
    return moves + ([] if session.is_terminal else ["touch"]) + ["delete"]


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters, order and page of the sessions table, as the query string gives them."""

    status: tuple[str, ...] = ()
    user_id: str = ""
    workspace_id: str = ""
    module_name: str = ""
    lifecycle: str = ""
    created_after: str = ""
    created_before: str = ""
    order: str = "newest"
    cursor: str = ""

    @classmethod
    def read(cls, query: Mapping[str, Any], statuses: list[str]) -> Filters:
        """The filters of a query string (``status`` may repeat)."""
        getlist = getattr(query, "getlist", None)
        status = tuple(s for s in (getlist("status") if getlist else ()) if s)
        text = {name: str(query.get(name, "")).strip() for name in (
            "user_id", "workspace_id", "module_name", "lifecycle", "created_after", "created_before", "cursor")}
        order = "oldest" if query.get("order") == "oldest" else "newest"
        unknown = [s for s in status if s not in statuses]
        if unknown:
            raise InvalidInput("status", f"unknown status {unknown[0][:40]!r}")
        return cls(status=status, order=order, **text)

    def arguments(self, user: str | None) -> dict[str, Any]:
        """The arguments of ``SessionManager.page`` and ``count_by_status`` (a user principal's own user)."""
        return {"status": list(self.status) or None, "user_id": user or self.user_id or None,
                "workspace_id": self.workspace_id or None, "module_name": self.module_name or None,
                "lifecycle": self.lifecycle or None, "created_after": _moment(self.created_after, "created_after"),
                "created_before": _moment(self.created_before, "created_before")}

    def query(self, *, statuses: bool = True, **changes: str) -> str:
        """The query string of these filters, with ``changes`` (an empty value drops the parameter); without the
        statuses when ``statuses`` is false."""
        values: dict[str, Any] = {"user_id": self.user_id, "workspace_id": self.workspace_id,
                                  "module_name": self.module_name, "lifecycle": self.lifecycle,
                                  "created_after": self.created_after, "created_before": self.created_before,
                                  "order": self.order, "cursor": self.cursor, **changes}
        pairs = [("status", s) for s in self.status if statuses] + [(k, v) for k, v in values.items() if v]
        return urlencode(pairs)


def _moment(value: str, field: str) -> datetime | None:
    """A time of a form's ``datetime-local`` field (read as UTC) or an ISO 8601 time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, "expected a time such as 2030-01-01T12:00") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
