"""The session lifecycle: the one place where the rules of a session live.

``SessionLifecycle`` is an ordinary python-statemachine ``StateMachine``. Its guards are pure functions of
the keyword arguments the engine sends with each event (``session``, ``now`` and the event's own arguments,
such as ``reason``), so the same definition can be run by python-statemachine itself or by the compiled
decision table in :mod:`sessionflow.domain.decision`, which is built from this class once and decides
exactly as the machine does (a test checks every state, event and guard outcome).

::

    pending ──start──▶ in_progress ──complete──▶ completed
       │                   │
       ├──fail─────────────┴──fail──▶ failed
       └──expire───────────┴──expire▶ expired

``record_file``, ``add_note``, ``touch`` and ``update`` are internal self-transitions: allowed while the
session is live (pending or in progress), refused once it is terminal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statemachine import State, StateMachine

from sessionflow.domain.models import EventType, Session

__all__ = [
    "EVENT_NAMES",
    "SessionLifecycle",
    "all_files_accounted",
    "deadline_not_passed",
    "deadline_passed",
    "has_reason",
]


def all_files_accounted(session: Session, **_: Any) -> bool:
    """Every file has an outcome: processed + failed == total."""
    return session.progress.all_accounted


def has_reason(reason: str | None = None, **_: Any) -> bool:
    """A failure needs a non-empty reason."""
    return bool(reason and reason.strip())


def deadline_passed(session: Session, now: datetime, **_: Any) -> bool:
    """The session's deadline is at or before now."""
    return session.expires_at is not None and session.expires_at <= now


def deadline_not_passed(session: Session, now: datetime, **_: Any) -> bool:
    """The session's deadline is still ahead of now."""
    return session.expires_at is None or session.expires_at > now


class SessionLifecycle(StateMachine):
    """pending → in_progress → completed | failed; pending | in_progress → expired once overdue."""

    pending = State("Pending", initial=True, value="pending")
    in_progress = State("In progress", value="in_progress")
    completed = State("Completed", final=True, value="completed")
    failed = State("Failed", final=True, value="failed")
    expired = State("Expired", final=True, value="expired")

    start = pending.to(in_progress, cond=deadline_not_passed)
    complete = in_progress.to(completed, cond=all_files_accounted)
    fail = pending.to(failed, cond=has_reason) | in_progress.to(failed, cond=has_reason)
    expire = pending.to(expired, cond=deadline_passed) | in_progress.to(expired, cond=deadline_passed)

    record_file = pending.to.itself(internal=True) | in_progress.to.itself(internal=True)  # type: ignore[no-untyped-call]
    add_note = pending.to.itself(internal=True) | in_progress.to.itself(internal=True)  # type: ignore[no-untyped-call]
    touch = pending.to.itself(internal=True) | in_progress.to.itself(internal=True)  # type: ignore[no-untyped-call]
    update = pending.to.itself(internal=True) | in_progress.to.itself(internal=True)  # type: ignore[no-untyped-call]


#: The name under which each machine event is recorded in the history.
EVENT_NAMES: dict[str, EventType] = {
    "start": EventType.STARTED,
    "complete": EventType.COMPLETED,
    "fail": EventType.FAILED,
    "expire": EventType.EXPIRED,
    "record_file": EventType.FILE_RECORDED,
    "add_note": EventType.NOTE_ADDED,
    "touch": EventType.TOUCHED,
    "update": EventType.UPDATED,
}
