"""What a write's caller is told when its connection breaks: applied, not applied, or not known.

A driver error raised after a write was sent does not say whether the database applied it: the commit may have
been done and only its answer lost. The stores retry such a write on a new connection and first look it up by
its record ids (unique across the store); a write found was applied, a write not found was not (the broken
connection's transaction was rolled back) and is tried again. :class:`WriteOutcome` carries what is known
across the attempts of one call: while ``unsure`` (an attempt may have committed, and no lookup has told yet),
a write that fails for good raises :class:`~sessionflow.errors.OutcomeUnknown`; otherwise it raises
:class:`~sessionflow.errors.StoreError`, which means "not applied".
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sessionflow.application.ports import Change
from sessionflow.errors import OutcomeUnknown, SessionflowError, StoreError

__all__ = ["WriteOutcome", "failure"]


class WriteOutcome:
    """One write's state across its attempts (see the module's docstring).

    ``unsure`` is set when an attempt is sent (after its connection was made: a connection refused sent
    nothing), kept when the attempt's connection breaks, and cleared when the attempt is answered (a success,
    or a refusal by the database, which applies nothing) or when a lookup tells what the lost attempt did.
    """

    __slots__ = ("changes", "operation", "record_ids", "session_ids", "unsure")

    def __init__(self, operation: str, changes: Sequence[Change] = (), *, session_ids: Sequence[UUID] = (),
                 record_ids: Sequence[UUID] = ()) -> None:
        self.operation = operation
        self.changes = changes
        self.session_ids = session_ids
        self.record_ids = record_ids
        self.unsure = False

    def unknown(self, reason: str, cause: str | None = None) -> OutcomeUnknown:
        """The :class:`OutcomeUnknown` of this write (its sessions and the record ids that tell, one per
        change: a change commits whole, so its first event tells for all of them)."""
        sessions = list(self.session_ids) or [change.session.id for change in self.changes]
        records = list(self.record_ids) or [change.events[0].record_id for change in self.changes if change.events]
        if cause is None:
            return OutcomeUnknown(self.operation, session_ids=sessions, record_ids=records, reason=reason)
        return OutcomeUnknown(self.operation, session_ids=sessions, record_ids=records, reason=reason, cause=cause)


def failure(message: str, outcome: WriteOutcome | None) -> SessionflowError:
    """The error of a call that failed for good: :class:`OutcomeUnknown` if ``outcome`` is unsure, else a
    :class:`StoreError` with ``message``."""
    if outcome is not None and outcome.unsure:
        return outcome.unknown(message)
    return StoreError(message)
