"""The ``Idempotency-Key`` request header of the write routes, and the ``Idempotent-Replayed`` response header.

Every write route takes the header (:data:`IdempotencyKeyHeader`). :func:`request_key` checks it and scopes it:
to the authenticated principal (``principal:<id>``), so one principal's key never matches, nor reveals the
answer to, another's; without authentication, to the performer the request names, as the library scopes a plain
key. The route hands the resulting :class:`~sessionflow.IdempotencyKey` to its manager method; when the manager
answered from the stored key (nothing written), :func:`replayed` adds ``Idempotent-Replayed: true`` to the
response, whose status and body the route builds from the returned session exactly as the first time.

A malformed key (empty, longer than 255 characters, anything but printable ASCII) is
:class:`~sessionflow.InvalidInput` naming the header: a 400, as every invalid input of the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Header

from sessionflow import IdempotencyKey
from sessionflow.application.idempotency import MAX_KEY_LENGTH, check_key
from sessionflow.entrypoints.http.access import Caller

__all__ = ["HEADER", "REPLAYED_HEADER", "REPLAYED_HEADER_DOC", "IdempotencyKeyHeader", "replayed", "request_key"]

#: The request header that carries a write's key.
HEADER: Final = "Idempotency-Key"
#: The response header of a write answered from its stored key.
REPLAYED_HEADER: Final = "Idempotent-Replayed"

#: The ``Idempotency-Key`` header parameter of a write route.
IdempotencyKeyHeader = Annotated[str | None, Header(alias=HEADER, description=(
    f"A key of the client's choosing (1 to {MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID) that makes "
    "a retry of this write safe: the same request sent again with the same key writes nothing and is answered "
    "with the first response (and Idempotent-Replayed: true); the key sent with another request is 422 "
    "idempotency_key_reused; while the first is still under way, 409 idempotency_key_in_flight. Scoped to the "
    "principal (without tokens: to the performer); kept for the service's idempotency window (24 hours by "
    "default)."))]

#: The OpenAPI description of the ``Idempotent-Replayed`` response header.
REPLAYED_HEADER_DOC: Final[dict[str, Any]] = {REPLAYED_HEADER: {
    "description": ("true when the write was answered from its Idempotency-Key's stored result: nothing was "
                    "written, and the status and body are those of the first response. Absent otherwise."),
    "schema": {"type": "string", "enum": ["true"]}}}


def request_key(who: Caller, header: str | None) -> IdempotencyKey | None:
    """The key of a write request (``None`` without the header), scoped to its principal; raises
    :class:`~sessionflow.InvalidInput` naming the header when the key is malformed."""
    if header is None:
        return None
    check_key(header, HEADER)
    principal = who.principal
    return IdempotencyKey(header, scope=None if principal is None else f"principal:{principal.id}")


def replayed(key: IdempotencyKey | None) -> dict[str, str]:
    """The response headers that tell a write answered from its stored key: ``Idempotent-Replayed: true``, or
    none."""
    return {REPLAYED_HEADER: "true"} if key is not None and key.replayed else {}
