"""Who is calling: bearer tokens, the token table, and the caller of a request with the rules for who may act.

Tokens are kept only as SHA-256 digests and compared in constant time. :func:`caller` is the FastAPI
dependency every ``/sessions`` and ``/session_manager`` route takes: with tokens configured it refuses a
request without a valid one (:class:`Unauthorized`, a 401); without them the performer is what the request
names. The operations routes (health, readiness, metrics) never take it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from fastapi import Depends, Request

from sessionflow import SYSTEM
from sessionflow.errors import InvalidInput, SessionUserMismatch

if TYPE_CHECKING:
    from sessionflow import SessionManager

__all__ = ["BearerAuth", "Caller", "CallerDep", "Unauthorized", "caller", "token_table"]


class Unauthorized(Exception):
    """A request without a bearer token, or with one the service does not know (a 401)."""

    def __init__(self, message: str, *, invalid_token: bool) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_token = invalid_token


def token_table(tokens: Mapping[str, str]) -> dict[bytes, str]:
    """The SHA-256 digest of each token → its performer id; refuses an empty or malformed mapping."""
    if not tokens:
        raise InvalidInput("tokens", "no tokens given: pass None to run without authentication")
    table: dict[bytes, str] = {}
    for token, performer in tokens.items():
        if not isinstance(token, str) or not token or not isinstance(performer, str) or not performer.strip():
            raise InvalidInput("tokens", "each token and performer id must be a non-empty string")
        table[hashlib.sha256(token.encode("utf-8")).digest()] = performer
    return table


class BearerAuth:
    """Bearer tokens → performer ids (tokens kept only as SHA-256 digests, compared in constant time)."""

    def __init__(self, table: dict[bytes, str]) -> None:
        self._table = table

    def performer(self, authorization: str | None) -> str:
        """The performer of an ``Authorization`` header's token; raises :class:`Unauthorized`."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)", invalid_token=False)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, name in self._table.items():  # every entry, so the time does not depend on the token
            if hmac.compare_digest(known, digest):
                found = name
        if found is None:
            raise Unauthorized("the bearer token is not valid", invalid_token=True)
        return found


class Caller:
    """The caller of one request: its authenticated performer (``None`` without authentication) and the
    rules for who may act on a session."""

    __slots__ = ("_manager", "_owner_check", "authenticated")

    def __init__(self, authenticated: str | None, manager: SessionManager, *, owner_check: bool) -> None:
        self.authenticated = authenticated
        self._manager = manager
        self._owner_check = owner_check

    def performer(self, given: str | None) -> str:
        """Who acts: the token's performer (``given`` may only repeat it), else ``given`` (then required).

        Raises :class:`~sessionflow.InvalidInput` (a 400) otherwise.
        """
        if self.authenticated is not None:
            if given is not None and given != self.authenticated:
                raise InvalidInput("performer_id", "differs from the bearer token's performer; omit it")
            return self.authenticated
        if given is None:
            raise InvalidInput("performer_id", "required (the service runs without authentication)")
        return given

    def check_owner(self, session_id: UUID, performer: str) -> None:
        """With the app's owner check on: only the session's user (or ``"system"``) may change it.

        Raises :class:`~sessionflow.SessionUserMismatch` (a 403), or what reading the session raises.
        """
        if self._owner_check:
            session = self._manager.get(session_id)
            if session.user_id is not None and performer not in (session.user_id, SYSTEM):
                raise SessionUserMismatch(session_id, owner=session.user_id, performer_id=performer)


def caller(request: Request) -> Caller:
    """The FastAPI dependency: the request's :class:`Caller`, from what :func:`~.state.share` put on the app.

    Raises :class:`Unauthorized` when the app has tokens and the request has no valid one.
    """
    state = request.app.state
    auth: BearerAuth | None = state.auth
    authenticated = None if auth is None else auth.performer(request.headers.get("authorization"))
    return Caller(authenticated, state.manager, owner_check=state.owner_check)


#: A route's parameter ``who: CallerDep`` authenticates the request and names its caller.
CallerDep = Annotated[Caller, Depends(caller)]
