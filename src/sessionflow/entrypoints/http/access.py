"""Who may touch what: the :class:`Caller` of one request and the rules it applies for the routes.

- A **user** principal reaches only the sessions whose ``user_id`` is its id. Another user's session (and a
  session of no user) is answered exactly as a session that does not exist: :class:`~sessionflow.SessionNotFound`,
  a 404 — on reads, history and writes alike — so ids cannot be probed. Creating or listing for another user
  is :class:`Forbidden` (a 403, whatever that user has: nothing is read first); without a ``user_id`` it
  creates and lists for itself. The event feed shows it only the events of its own sessions.
- A **service** principal reaches every session; its scopes were checked before the route ran
  (:func:`~.auth.authorize`).
- **Without authentication** the performer is what the request names, and the app's owner check (if on)
  refuses a write by anyone but the session's user or ``"system"`` (:class:`~sessionflow.SessionUserMismatch`,
  a 403), as before principals existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from sessionflow import SYSTEM, Session, SessionEvent
from sessionflow.entrypoints.http.principals import Principal, Scope, User
from sessionflow.errors import InvalidInput, SessionNotFound, SessionUserMismatch

if TYPE_CHECKING:
    from sessionflow import SessionManager

__all__ = ["Caller", "Forbidden"]


class Forbidden(Exception):
    """An authenticated principal may not make this request (a 403): a service without the route's scope,
    or a user naming another user. Raised before anything is read, so it tells nothing about sessions."""

    def __init__(self, message: str, *, required_scope: Scope | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.required_scope = required_scope


class Caller:
    """The caller of one request: its principal (``None`` without authentication) and the rules for what it
    may read and change."""

    __slots__ = ("_manager", "_owner_check", "principal")

    def __init__(self, principal: Principal | None, manager: SessionManager, *, owner_check: bool) -> None:
        self.principal = principal
        self._manager = manager
        self._owner_check = owner_check

    @property
    def _user(self) -> str | None:
        """The user id of a user principal, else ``None``."""
        return self.principal.id if isinstance(self.principal, User) else None

    def performer(self, given: str | None) -> str:
        """Who acts: the principal's id (``given`` may only repeat it), else ``given`` (then required).

        Raises :class:`~sessionflow.InvalidInput` (a 400) otherwise.
        """
        if self.principal is not None:
            if given is not None and given != self.principal.id:
                raise InvalidInput("performer_id", "differs from the bearer token's principal; omit it")
            return self.principal.id
        if given is None:
            raise InvalidInput("performer_id", "required (the service runs without authentication)")
        return given

    def owner_for_create(self, user_id: str | None) -> str | None:
        """The ``user_id`` a new session gets: a user principal's own (``None`` → its own; another's is
        :class:`Forbidden`); for anyone else, ``user_id`` as given."""
        own = self._user
        if own is None:
            return user_id
        if user_id is not None and user_id != own:
            raise Forbidden("a user token creates sessions only for its own user; omit user_id or give your own")
        return own

    def owner_for_list(self, user_id: str | None) -> str | None:
        """The ``user_id`` filter of a list: a user principal's own (``None`` → its own; another's is
        :class:`Forbidden`, whether or not that user has sessions); for anyone else, as given."""
        own = self._user
        if own is None:
            return user_id
        if user_id is not None and user_id != own:
            raise Forbidden("a user token lists only its own sessions; omit user_id or give your own")
        return own

    @property
    def feed_user(self) -> str | None:
        """The user whose events the feed shows this caller: a user principal's own id; ``None`` (every
        event) for anyone else."""
        return self._user

    def visible(self, session: Session) -> Session:
        """``session`` if the caller may see it; raises :class:`~sessionflow.SessionNotFound` otherwise."""
        own = self._user
        if own is not None and session.user_id != own:
            raise SessionNotFound(session.id)
        return session

    def get(self, session_id: UUID) -> Session:
        """The session, if the caller may see it (else, or if there is none, :class:`SessionNotFound`)."""
        return self.visible(self._manager.get(session_id))

    def history(self, session_id: UUID) -> list[SessionEvent]:
        """Every event of the session (deleted ones included), if the caller may see it."""
        events = self._manager.history(session_id)
        own = self._user
        if own is not None and _owner_of(events) != own:
            raise SessionNotFound(session_id)
        return events

    def check_create_started(self, user_id: str | None, performer: str) -> None:
        """Before creating and starting a session for ``user_id`` in one write: the rule :meth:`check_write`
        applies to the session once it exists, decided before it does (a user principal owns what it creates:
        :meth:`owner_for_create`)."""
        if (self.principal is None and self._owner_check and user_id is not None
                and performer not in (user_id, SYSTEM)):
            raise SessionUserMismatch(None, owner=user_id, performer_id=performer)

    def check_write(self, session_id: UUID, performer: str, *, keyed: bool = False) -> None:
        """Before a write to a session: a user principal must own it (else :class:`SessionNotFound`, and
        nothing is written); without authentication, the app's owner check (:class:`SessionUserMismatch`).

        ``keyed``: the write carries an idempotency key, so it may be the retry of a write that left the session
        deleted (its answer is stored): the owner is then read from the session's history, which a deletion
        keeps, and the manager answers the retry (or, without a stored answer, refuses a deleted session).
        """
        if self._user is None and not (self.principal is None and self._owner_check):
            return
        if keyed:
            events = self._manager.history(session_id)
            if not events:
                raise SessionNotFound(session_id)
            owner = _owner_of(events)
        else:
            owner = self._manager.get(session_id).user_id
        if self._user is not None:
            if owner != self._user:
                raise SessionNotFound(session_id)
        elif owner is not None and performer not in (owner, SYSTEM):
            raise SessionUserMismatch(session_id, owner=owner, performer_id=performer)


def _owner_of(events: list[SessionEvent]) -> str | None:
    """The ``user_id`` a session was created with (its first event), or ``None``."""
    if not events:
        return None
    owner = events[0].payload.get("user_id")
    return owner if isinstance(owner, str) else None
