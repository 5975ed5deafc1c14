"""Who a bearer token stands for: a :class:`User` or a :class:`Service` with scopes, and the token table.

A **user** principal acts as that user: it sees, lists and changes only the sessions whose ``user_id`` is
its id, and creates sessions only for itself. A **service** principal (an orchestrator, a worker) acts on any
user's sessions, as far as its :class:`Scope` s allow, and is recorded under its own id as the performer.

:meth:`TokenTable.parse` reads the configuration (a JSON object, see ``docs/http.md``): each key is a token,
or ``"sha256:<64 hex digits>"`` (the token's digest, so the file holds no secret); each value is a user id
(``"alice"``: a user principal, as before services existed), ``{"user": "alice"}`` or
``{"service": "scheduler", "scopes": ["sessions:read", "sessions:write"]}``. Several tokens may stand for
one principal (that is how a token is rotated). Tokens are kept only as SHA-256 digests, looked up in
constant time, and never appear in a message, a ``repr`` or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal

from sessionflow import SYSTEM
from sessionflow.domain.values import validate_identifier
from sessionflow.errors import InvalidInput

__all__ = ["DIGEST_PREFIX", "Principal", "Scope", "Service", "TokenTable", "User", "token_digest"]

#: A key of the token configuration that starts with this is a token's SHA-256 digest (hex), not a token.
DIGEST_PREFIX: Final = "sha256:"
_DIGEST: Final = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
#: What a token may contain: visible ASCII, no spaces (it travels in an ``Authorization`` header).
_TOKEN: Final = re.compile(r"^[\x21-\x7e]+$")


class Scope(StrEnum):
    """What a service principal may do. Scopes are independent: none implies another."""

    #: Read any session, list sessions of any user, read any session's history.
    SESSIONS_READ = "sessions:read"
    #: Create sessions for any user and change any session (transitions, progress, notes, fields). A write
    #: answers with the session it wrote.
    SESSIONS_WRITE = "sessions:write"
    #: Delete any session (and the purge and migrate routes to come).
    SESSIONS_ADMIN = "sessions:admin"
    #: Reserved for the event feed to come; no route takes it yet.
    EVENTS_READ = "events:read"


@dataclass(frozen=True, slots=True)
class User:
    """A user principal: acts as the user ``id``, on that user's sessions only."""

    id: str
    #: ``"user"``.
    kind: ClassVar[Literal["user"]] = "user"

    def __post_init__(self) -> None:
        validate_identifier(self.id, "user")
        if self.id == SYSTEM:
            raise InvalidInput("user", f"{SYSTEM!r} is the library's own performer, not a user: configure "
                                       f'the token as a service, e.g. {{"service": "{SYSTEM}", "scopes": [...]}}')


@dataclass(frozen=True, slots=True)
class Service:
    """A service principal: acts on any user's sessions within its ``scopes``, recorded as ``id``."""

    id: str
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    #: ``"service"``.
    kind: ClassVar[Literal["service"]] = "service"

    def __post_init__(self) -> None:
        validate_identifier(self.id, "service")
        try:
            scopes = frozenset(Scope(scope) for scope in self.scopes)
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise InvalidInput("scopes", f"unknown scope for service {self.id!r} (known: {known})") from None
        if not scopes:
            raise InvalidInput("scopes", f"service {self.id!r} has no scope: give at least one")
        object.__setattr__(self, "scopes", scopes)

    def allows(self, scope: Scope) -> bool:
        """Whether this service holds ``scope``."""
        return scope in self.scopes


#: The principal a token stands for.
Principal = User | Service


def token_digest(token: str) -> bytes:
    """The SHA-256 digest of a token, as the table keeps it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenTable:
    """Token digests → principals; immutable. :meth:`find` compares with every entry in constant time."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[bytes, Principal]) -> None:
        if not entries:
            raise InvalidInput("tokens", "no tokens given: pass None to run without authentication")
        self._entries: tuple[tuple[bytes, Principal], ...] = tuple(entries.items())

    @classmethod
    def parse(cls, tokens: Mapping[str, Any], *, source: str = "tokens") -> TokenTable:
        """The table of a token configuration; raises :class:`~sessionflow.InvalidInput` naming ``source``.

        A message names an entry by its position and principal, never by its token.
        """
        if not isinstance(tokens, Mapping) or not tokens:
            raise InvalidInput(source, "no tokens given: expected a non-empty mapping of token → principal "
                                       "(pass None to run without authentication)")
        entries: dict[bytes, Principal] = {}
        seen: dict[str, Principal] = {}
        for position, (key, value) in enumerate(tokens.items(), start=1):
            where = f"entry {position}"
            principal = _principal(value, source, where)
            where = f"{where} ({principal.kind} {principal.id!r})"
            digest = _digest_of(key, source, where)
            earlier = seen.setdefault(principal.id, principal)
            if earlier != principal:
                raise InvalidInput(source, f"{where}: {principal.id!r} is configured twice, differently (one id "
                                           "is one principal: the same kind and scopes for each of its tokens)")
            if entries.setdefault(digest, principal) != principal:
                raise InvalidInput(source, f"{where}: the same token is given for two principals")
        return cls(entries)

    def find(self, token: str) -> Principal | None:
        """The principal of ``token``, or ``None``; the time taken does not depend on which entry matches."""
        digest = token_digest(token)
        found: Principal | None = None
        for known, principal in self._entries:  # every entry, so the time does not tell which one matched
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    def find_bound(self, binding: Callable[[bytes], bytes], bound: bytes) -> Principal | None:
        """The principal of the token whose ``binding(digest)`` is ``bound`` (what a console cookie keeps instead
        of the token or its digest), or ``None``; every entry is compared, in constant time."""
        found: Principal | None = None
        for known, principal in self._entries:
            if hmac.compare_digest(binding(known), bound):
                found = principal
        return found

    def current(self) -> TokenTable:
        """The table itself (a :class:`TokenTable` is its own, unchanging, token source)."""
        return self

    @property
    def principals(self) -> frozenset[Principal]:
        """Every principal some token stands for."""
        return frozenset(principal for _, principal in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the digests
        users = sum(1 for p in self.principals if isinstance(p, User))
        return f"<TokenTable: {len(self)} tokens, {users} users, {len(self.principals) - users} services>"


def _principal(value: Any, source: str, where: str) -> Principal:
    try:
        if isinstance(value, User | Service):
            return value
        if isinstance(value, str):
            return User(value)
        if isinstance(value, Mapping):
            keys = set(value)
            if keys == {"user"}:
                return User(value["user"])
            if keys == {"service", "scopes"} and _is_list(value["scopes"]):
                return Service(value["service"], frozenset(value["scopes"]))
    except InvalidInput as error:
        raise InvalidInput(source, f"{where}: {error.problem}") from None
    raise InvalidInput(source, f'{where}: expected a user id, {{"user": id}} or {{"service": id, "scopes": '
                               '["sessions:read", ...]}')


def _is_list(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping) and all(
        isinstance(item, str) for item in value)


def _digest_of(key: Any, source: str, where: str) -> bytes:
    if not isinstance(key, str) or not key:
        raise InvalidInput(source, f"{where}: a token must be a non-empty string")
    match = _DIGEST.match(key)
    if match is not None:
        return bytes.fromhex(match.group(1))
    if key.startswith(DIGEST_PREFIX):
        raise InvalidInput(source, f"{where}: a {DIGEST_PREFIX} key needs the 64 hex digits of the digest")
    if _TOKEN.match(key) is None:
        raise InvalidInput(source, f"{where}: a token is visible ASCII without spaces (it is sent in a header)")
    return token_digest(key)
