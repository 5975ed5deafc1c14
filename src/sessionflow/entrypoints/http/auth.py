"""Authentication: the bearer token of a request → its :class:`~.principals.Principal`, and the refusals.

:class:`BearerAuth` looks a token up in a token source (a :class:`~.principals.TokenTable`, or a
:class:`~.environment.TokenFile` that reloads itself when its file changes). :class:`Authorize` is the FastAPI
dependency of a route (``who: Reader``, ``Writer`` or ``Admin``): it authenticates the request
(:class:`Unauthorized`, a 401, without a valid token), checks the route's :class:`~.principals.Scope` for a
service principal (:class:`~.access.Forbidden`, a 403, before anything is read) and hands the route its
:class:`~.access.Caller`. The operations routes (health, readiness, metrics) never take it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import Depends, Request

from sessionflow.entrypoints.http.access import Caller, Forbidden
from sessionflow.entrypoints.http.principals import Principal, Scope, Service, TokenTable
from sessionflow.errors import InvalidInput

__all__ = ["Admin", "Authorize", "BearerAuth", "CheckedTokens", "EventsReader", "Forbidden", "Reader", "TokenSource",
           "Unauthorized", "Writer"]

logger = logging.getLogger("sessionflow.http")


class Unauthorized(Exception):
    """A request without a bearer token, or with one the service does not know (a 401)."""

    def __init__(self, message: str, *, invalid_token: bool) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_token = invalid_token


class TokenSource(Protocol):
    """Where the tokens come from: :meth:`current` is the table to check a request against now."""

    def current(self) -> TokenTable:
        """The token table in force."""
        ...


class CheckedTokens:
    """A token source whose every new table must pass ``check`` (raising
    :class:`~sessionflow.errors.InvalidInput`) before it is used; a table that fails is logged (by the
    problem, never a token) and the last one that passed stays in force."""

    __slots__ = ("_check", "_in_force", "_source")

    def __init__(self, source: TokenSource, check: Callable[[TokenTable], None]) -> None:
        self._source = source
        self._check = check
        first = source.current()
        check(first)
        self._in_force = first

    def current(self) -> TokenTable:
        """The newest table of the source that passed the check."""
        table = self._source.current()
        if table is not self._in_force:
            try:
                self._check(table)
            except InvalidInput as error:
                logger.error("new tokens not used, the previous ones stay in force: %s", error.problem)
                return self._in_force
            self._in_force = table
        return table


class BearerAuth:
    """Bearer tokens → principals, from a :class:`TokenSource` (tokens kept only as SHA-256 digests)."""

    __slots__ = ("source",)

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def principal(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header's bearer token; raises :class:`Unauthorized`."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)", invalid_token=False)
        found = self.source.current().find(token)
        if found is None:
            raise Unauthorized("the bearer token is not valid", invalid_token=True)
        return found


class Authorize:
    """The FastAPI dependency of a route that needs ``scope`` from a service principal.

    With tokens, a request without a valid one is :class:`Unauthorized` and a service without ``scope`` is
    :class:`~.access.Forbidden`; a user principal passes (what it may touch is checked per session by the
    :class:`~.access.Caller`). Without tokens every request passes, as an unauthenticated caller. The
    OpenAPI document reads ``scope`` to describe each route's security.
    """

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> Caller:
        """The request's :class:`~.access.Caller`, once it is authenticated and its scope checked."""
        state = request.app.state
        auth: BearerAuth | None = state.auth
        principal = None if auth is None else auth.principal(request.headers.get("authorization"))
        if isinstance(principal, Service) and not principal.allows(self.scope):
            raise Forbidden(f"the token of service {principal.id!r} lacks the scope {self.scope.value!r} this "
                            "route needs", required_scope=self.scope)
        return Caller(principal, state.manager, owner_check=state.owner_check)


#: A reading route's caller (``who: Reader``): a service needs ``sessions:read``.
Reader = Annotated[Caller, Depends(Authorize(Scope.SESSIONS_READ))]
#: A writing route's caller (``who: Writer``): a service needs ``sessions:write``.
Writer = Annotated[Caller, Depends(Authorize(Scope.SESSIONS_WRITE))]
#: A deleting route's caller (``who: Admin``): a service needs ``sessions:admin``.
Admin = Annotated[Caller, Depends(Authorize(Scope.SESSIONS_ADMIN))]
#: A route of the event feed (``who: EventsReader``): a service needs ``events:read``.
EventsReader = Annotated[Caller, Depends(Authorize(Scope.EVENTS_READ))]
