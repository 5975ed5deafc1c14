"""Rebuild and verify the projection from the events.

The events are the truth; the ``sessions`` projection is derived from them for fast reads. ``rebuild``
drops the projection and folds every history again; ``verify`` folds every history and lists every
difference from the stored projection, without changing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sessionflow.application.ports import EventStore
from sessionflow.domain.models import Session, SessionEvent
from sessionflow.domain.replay import CorruptHistory, replay

__all__ = ["Difference", "rebuild_projection", "verify_projection"]

Progress = Callable[[int], object]


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of one session where the projection disagrees with the fold of its events.

    ``field`` is ``"*"`` when the whole session is missing on one side, or its history cannot be folded.
    """

    session_id: UUID
    field: str
    projected: Any
    replayed: Any

    def __str__(self) -> str:
        return f"{self.session_id} {self.field}: projection={self.projected!r} events={self.replayed!r}"


def _folded(store: EventStore, progress: Progress | None) -> Iterator[Session]:
    for history in store.histories():
        session = replay(history)
        if progress is not None:
            progress(1)
        yield session


def rebuild_projection(store: EventStore, progress: Progress | None = None) -> int:
    """Replace every projection row by the fold of its session's events. Returns the sessions rebuilt.

    Raises :class:`~sessionflow.domain.replay.CorruptHistory` (and changes nothing) if a history cannot be
    folded.
    """
    return store.replace_projection(_folded(store, progress))


def verify_projection(store: EventStore, progress: Progress | None = None) -> list[Difference]:
    """Every difference between the projection and the fold of the events (empty when they agree).

    The projection and the events are streamed in two passes; a session that differs is read again with
    both from one snapshot before it is reported, so writers running meanwhile cause no false report.
    """
    suspects = _compare(store, progress)
    if not suspects:
        return []
    confirmed: list[Difference] = []
    for session_id in dict.fromkeys(d.session_id for d in suspects):
        projection, history = store.read_together(session_id)
        confirmed.extend(_differences(session_id, projection, history))
    return confirmed


def _differences(session_id: UUID, projection: Session | None, history: list[SessionEvent]) -> list[Difference]:
    if not history:
        return [] if projection is None else [Difference(session_id, "*", "session", None)]
    try:
        folded = replay(history)
    except CorruptHistory as error:
        return [Difference(session_id, "*", "history", str(error))]
    if projection is None:
        return [Difference(session_id, "*", None, "session")]
    if projection == folded:
        return []
    return [Difference(session_id, name, getattr(projection, name), getattr(folded, name))
            for name in Session.model_fields if getattr(projection, name) != getattr(folded, name)]


def _compare(store: EventStore, progress: Progress | None) -> list[Difference]:
    differences: list[Difference] = []
    projected: dict[UUID, Session] = {s.id: s for s in store.projections()}
    for history in store.histories():
        session_id = history[0].session_id
        try:
            folded = replay(history)
        except CorruptHistory as error:
            differences.append(Difference(session_id, "*", "history", str(error)))
            projected.pop(session_id, None)
            continue
        if progress is not None:
            progress(1)
        row = projected.pop(session_id, None)
        if row is None:
            differences.append(Difference(session_id, "*", None, "session"))
            continue
        if row == folded:
            continue
        for name in Session.model_fields:
            mine, theirs = getattr(row, name), getattr(folded, name)
            if mine != theirs:
                differences.append(Difference(session_id, name, mine, theirs))
    for session_id in projected:
        differences.append(Difference(session_id, "*", "session", None))
    return differences
