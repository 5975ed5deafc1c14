"""The Redis store's cache of decoded sessions: decoding a projection document costs more than fetching it.

Each entry keeps the document a session was decoded from; a read fetches the stored document and takes the
cached session only when the document is the very same, so the cache never returns a stale session. Only a
write's own starting point (``get(fresh=False)``) takes the cached copy unchecked: the append's version check
catches a stale one. The least recently used entry goes first when the cache is full.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from uuid import UUID

from sessionflow.adapters.redis.codec import decode_session
from sessionflow.domain.models import Session

__all__ = ["SessionCache"]


class SessionCache:
    """Up to ``size`` sessions kept decoded with their documents (0: none kept); safe across threads."""

    __slots__ = ("_entries", "_lock", "size")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("cache_size must be >= 0")
        self.size = size
        self._entries: OrderedDict[UUID, tuple[str, Session]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, session_id: UUID) -> Session | None:
        """The cached session, unchecked against the stored document (``None``: not cached)."""
        if not self.size:
            return None
        with self._lock:
            entry = self._entries.get(session_id)
        return None if entry is None else entry[1]

    def remember(self, session_id: UUID, doc: str, session: Session) -> None:
        """Keep ``session``, decoded from (or encoded as) ``doc``."""
        if not self.size:
            return
        with self._lock:
            entries = self._entries
            if session_id in entries:
                entries.move_to_end(session_id)
            entries[session_id] = (doc, session)
            if len(entries) > self.size:
                entries.popitem(last=False)

    def forget(self, session_ids: Iterable[UUID]) -> None:
        """Drop the sessions' entries (after a write whose result is not known here, or a removal)."""
        if not self.size:
            return
        with self._lock:
            for session_id in session_ids:
                self._entries.pop(session_id, None)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def decode(self, session_id: UUID, doc: str) -> Session:
        """The session ``doc`` holds: the cached one if it was decoded from this very document."""
        if self.size:
            with self._lock:
                entry = self._entries.get(session_id)
            if entry is not None and entry[0] == doc:
                return entry[1]
        session = decode_session(doc, session_id)
        self.remember(session_id, doc, session)
        return session
