"""Who uses the console: signing in with a bearer token once, the signed cookie that stands for it, the protection
of every write against cross-site requests, and the loopback rule without tokens.

The cookie names the principal and is bound to its token's digest by an HMAC under the console's secret (never
the token, nor its digest): it is checked on every request against the token table in force, so removing or
rotating the token revokes it, and any process holding the same secret and tokens accepts it (``--workers``,
several hosts). It is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the request came over TLS, and expires.
Every form carries a token derived from the cookie (or, without tokens, from the secret alone), and a write
whose ``Origin`` names another site is refused as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from sessionflow.entrypoints.http.auth import TokenSource
from sessionflow.entrypoints.http.principals import Principal, Scope, Service, User, token_digest

__all__ = ["COOKIE", "ConsoleAccess", "Denied", "SignedIn"]

#: The sign-in cookie's name.
COOKIE = "sessionflow_console"
#: How long a sign-in lasts.
LIFETIME = 8 * 3600


class Denied(Exception):
    """A request the console refuses: ``status`` 401 (sign in), 403 (not allowed) or 400 (a cross-site write)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The principal of one request (``None`` without tokens) and the form token its writes must carry."""

    principal: Principal | None
    csrf: str

    @property
    def name(self) -> str:
        """How the page names who is signed in."""
        if self.principal is None:
            return "local (no tokens)"
        return f"{self.principal.kind} {self.principal.id}"

    def allows(self, scope: Scope) -> bool:
        """Whether the principal may do what ``scope`` covers (a user: within its own sessions)."""
        return not isinstance(self.principal, Service) or self.principal.allows(scope)

    def need(self, scope: Scope) -> None:
        """Raise :class:`Denied` (403) unless :meth:`allows`."""
        if not self.allows(scope):
            raise Denied(403, f"this token lacks the scope {scope.value!r} this page needs")


class ConsoleAccess:
    """The console's rules of access over a token source (``None``: no tokens, loopback clients only unless
    ``insecure_no_auth``) and a secret (bytes; drawn at random when ``None``)."""

    def __init__(self, tokens: TokenSource | None, secret: bytes | None, *, insecure_no_auth: bool = False) -> None:
        self.tokens = tokens
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._insecure = insecure_no_auth

    @property
    def secured(self) -> bool:
        """Whether the console asks for a sign-in (it has tokens)."""
        return self.tokens is not None

    def _mac(self, *parts: bytes) -> str:
        return hmac.new(self._secret, b"\x00".join(parts), hashlib.sha256).hexdigest()

    def _binding(self, digest: bytes) -> bytes:
        return self._mac(b"bind", digest).encode()

    def signed_in(self, request: Request) -> SignedIn:
        """The request's :class:`SignedIn`; :class:`Denied` (401) without a valid sign-in, (403) for a client
        beyond the loopback interface when there are no tokens."""
        if self.tokens is None:
            host = request.client.host if request.client is not None else ""
            if not self._insecure and not _loopback(host):
                raise Denied(403, "without tokens the console answers only on the loopback interface")
            return SignedIn(None, self._mac(b"csrf", b"local")[:32])
        cookie = request.cookies.get(COOKIE, "")
        payload, _, mac = cookie.rpartition(".")
        if not payload or not hmac.compare_digest(self._mac(b"cookie", payload.encode()), mac):
            raise Denied(401, "sign in with a token")
        try:
            fields: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload.encode() + b"=" * (-len(payload) % 4)))
            expires, kind, ident, bound = int(fields["e"]), str(fields["k"]), str(fields["p"]), str(fields["b"])
        except (ValueError, KeyError, TypeError):
            raise Denied(401, "sign in with a token") from None
        if expires < time.time():
            raise Denied(401, "your sign-in expired: sign in again")
        principal = self.tokens.current().find_bound(self._binding, bound.encode())
        if principal is None or principal.kind != kind or principal.id != ident:
            raise Denied(401, "the token of this sign-in is no longer valid: sign in again")
        return SignedIn(principal, self._mac(b"csrf", mac.encode())[:32])

    def sign_in(self, token: str, request: Request, response: Response) -> Principal:
        """Check ``token`` and set the sign-in cookie on ``response``; :class:`Denied` (401) for an unknown
        token (the token itself is never kept)."""
        if self.tokens is None:
            raise Denied(400, "this console has no tokens: nothing to sign in to")
        principal = self.tokens.current().find(token.strip())
        if principal is None:
            raise Denied(401, "this token is not valid")
        fields = {"k": principal.kind, "p": principal.id, "e": int(time.time()) + LIFETIME,
                  "b": self._binding(token_digest(token.strip())).decode()}
        payload = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode().rstrip("=")
        response.set_cookie(COOKIE, f"{payload}.{self._mac(b'cookie', payload.encode())}", max_age=LIFETIME,
                            path=_root(request), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return principal

    def sign_out(self, request: Request, response: Response) -> None:
        """Remove the sign-in cookie."""
        response.delete_cookie(COOKIE, path=_root(request), httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")

    def sign_in_form_token(self) -> str:
        """The form token of the sign-in form (it has no cookie yet: the same for everyone, the ``Origin`` check
        and ``SameSite`` do the rest)."""
        return self._mac(b"csrf", b"sign-in")[:32]

    def check_write(self, request: Request, given: str, expected: str) -> None:
        """Refuse (400) a write whose form token is not ``expected`` or whose ``Origin`` is another site's."""
        origin = request.headers.get("origin")
        if origin is not None and origin != "null" and origin.rstrip("/") != _origin(request):
            raise Denied(400, "a write from another site was refused")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Denied(400, "the form expired or came from elsewhere: reload the page and try again")


def _root(request: Request) -> str:
    """The path the console is mounted at (the cookie's path)."""
    return str(request.scope.get("root_path", "")) or "/"


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def user_of(signed: SignedIn) -> str | None:
    """The user whose sessions alone the principal sees (a user principal), else ``None``."""
    return signed.principal.id if isinstance(signed.principal, User) else None
