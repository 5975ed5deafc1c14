"""The Redis store's cache of decoded sessions: a document decodes once, a changed document never returns the
old session, and the least recently used entry goes first."""

from __future__ import annotations

import pytest

from sessionflow import SessionManager
from sessionflow.adapters.redis.cache import SessionCache
from sessionflow.adapters.redis.codec import encode_session
from sessionflow.domain.models import Session


def _sessions(n: int) -> list[Session]:
    with SessionManager.in_memory() as manager:
        return [manager.create(performer_id=f"p{k}") for k in range(n)]


def test_a_document_decodes_once_and_a_changed_one_again() -> None:
    cache = SessionCache(10)
    (session,) = _sessions(1)
    doc = encode_session(session)
    first = cache.decode(session.id, doc)
    assert first == session
    assert cache.decode(session.id, doc) is first
    changed = session.model_copy(update={"version": session.version + 1})
    assert cache.decode(session.id, encode_session(changed)).version == session.version + 1
    assert cache.cached(session.id) == changed


def test_the_least_recently_used_goes_first() -> None:
    cache = SessionCache(2)
    a, b, c = _sessions(3)
    for s in (a, b):
        cache.remember(s.id, encode_session(s), s)
    assert cache.cached(a.id) is a
    cache.remember(a.id, encode_session(a), a)  # used again: b is now the oldest
    cache.remember(c.id, encode_session(c), c)
    assert cache.cached(b.id) is None
    assert cache.cached(a.id) is a
    assert cache.cached(c.id) is c
    cache.forget([a.id])
    assert cache.cached(a.id) is None
    cache.clear()
    assert cache.cached(c.id) is None


def test_size_zero_keeps_nothing() -> None:
    cache = SessionCache(0)
    (session,) = _sessions(1)
    doc = encode_session(session)
    cache.remember(session.id, doc, session)
    assert cache.cached(session.id) is None
    assert cache.decode(session.id, doc) is not cache.decode(session.id, doc)
    with pytest.raises(ValueError, match="cache_size"):
        SessionCache(-1)
