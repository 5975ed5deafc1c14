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
from sessionflow.domain.models import Session
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
    """Every difference between the projection and the fold of the events (empty when they agree)."""
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
