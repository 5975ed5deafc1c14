"""``AsyncWrites``: the writes of :class:`~sessionflow.application.async_manager.AsyncManagerCore`.

Each coroutine awaits the synchronous manager's method of the same name (``send`` awaits ``send_with``) through
the runner, with its arguments as given: the synchronous manager validates them, so the errors are its own.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from sessionflow.application.async_base import AsyncManagerBase
from sessionflow.application.batches import CreateItem, SendItem
from sessionflow.application.idempotency import IdempotencyKey
from sessionflow.application.validation import UNSET
from sessionflow.domain.definitions import LifecycleDefinition
from sessionflow.domain.models import Session, SessionStatus

__all__ = ["AsyncWrites"]


class AsyncWrites(AsyncManagerBase):
    """The writes of the asyncio facade, as coroutines."""

    async def create(self, *, performer_id: str, user_id: str | None = None, workspace_id: str | None = None,
                     module_name: str | None = None, file_paths: Iterable[str] | None = None,
                     metadata: Mapping[str, Any] | None = None, ttl: timedelta | None = None,
                     lifecycle: LifecycleDefinition | str | None = None, start: bool = False,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Create a session in its lifecycle's initial state, or created and started at once with ``start``
        (see ``SessionManager.create``)."""
        return await self._call(self._sync.create, performer_id=performer_id, user_id=user_id,
                                workspace_id=workspace_id, module_name=module_name, file_paths=file_paths,
                                metadata=metadata, ttl=ttl, lifecycle=lifecycle, start=start,
                                idempotency_key=idempotency_key)

    async def create_many(self, items: Iterable[CreateItem | Mapping[str, Any]], *,
                          performer_id: str) -> builtins.list[Session]:
        """Create a session per item, all in one transaction (see ``SessionManager.create_many``)."""
        return await self._call(self._sync.create_many, items, performer_id=performer_id)

    async def send_many(self, items: Iterable[SendItem | tuple[Any, ...]], *,
                        performer_id: str) -> builtins.list[Session]:
        """Send an event per item, all in one transaction (see ``SessionManager.send_many``)."""
        return await self._call(self._sync.send_many, items, performer_id=performer_id)

    async def send(self, session_id: UUID | str, event: str, *, performer_id: str,
                   expected_version: int | None = None, idempotency_key: str | IdempotencyKey | None = None,
                    **args: Any) -> Session:
        """Send any event of the session's lifecycle, with keyword arguments for its guards and validators."""
        return await self._call(self._sync.send_with, session_id, event, args, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def send_with(self, session_id: UUID | str, event: str, args: Mapping[str, Any] | None = None, *,
                        performer_id: str, expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """:meth:`send` with the event's arguments as a mapping."""
        return await self._call(self._sync.send_with, session_id, event, args, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def migrate(self, session_id: UUID | str, *, performer_id: str, to_version: int | None = None,
                      expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Move a session to a newer version of its lifecycle (see ``SessionManager.migrate``)."""
        return await self._call(self._sync.migrate, session_id, performer_id=performer_id, to_version=to_version,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def start(self, session_id: UUID | str, *, performer_id: str,
                    expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """``pending`` → ``in_progress``. Refused once the deadline has passed."""
        return await self._call(self._sync.start, session_id, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def record_file(self, session_id: UUID | str, path: str, error: str | None = None, *,
                          performer_id: str, expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Record the outcome of one of the session's files: processed, or failed with ``error``."""
        return await self._call(self._sync.record_file, session_id, path, error, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def add_note(self, session_id: UUID | str, *, file_path: str, status: str, memory_id: str | None = None,
                       performer_id: str, expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Attach a note (``file_path``, ``memory_id``, ``status``) to a live session."""
        return await self._call(self._sync.add_note, session_id, file_path=file_path, status=status,
                                memory_id=memory_id, performer_id=performer_id, expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def complete(self, session_id: UUID | str, *, performer_id: str,
                       expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """``in_progress`` → ``completed``, once every file is processed or failed."""
        return await self._call(self._sync.complete, session_id, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def fail(self, session_id: UUID | str, *, reason: str, performer_id: str,
                   expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """``pending`` | ``in_progress`` → ``failed``, with a non-empty ``reason``."""
        return await self._call(self._sync.fail, session_id, reason=reason, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def expire(self, session_id: UUID | str) -> Session:
        """Expire an overdue live session now, as ``"system"``."""
        return await self._call(self._sync.expire, session_id)

    async def touch(self, session_id: UUID | str, *, performer_id: str,
                    expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Extend the deadline to ``now`` + the session's TTL (never beyond its maximum lifetime)."""
        return await self._call(self._sync.touch, session_id, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)

    async def update(self, session_id: UUID | str, *, performer_id: str, expected_version: int | None = None,
                     current_file: str | Any | None = UNSET, metadata: Mapping[str, Any] | Any = UNSET,
                     status: SessionStatus | str | None = None, reason: str | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Change ``current_file`` and/or replace ``metadata``, and/or move to ``status`` (see
        ``SessionManager.update``)."""
        return await self._call(self._sync.update, session_id, performer_id=performer_id,
                                expected_version=expected_version, current_file=current_file, metadata=metadata,
                                status=status, reason=reason, idempotency_key=idempotency_key)

    async def delete(self, session_id: UUID | str, *, performer_id: str,
                     expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Delete a session: it is gone from :meth:`get` and :meth:`list`; its history stays readable."""
        return await self._call(self._sync.delete, session_id, performer_id=performer_id,
                                expected_version=expected_version,
                                idempotency_key=idempotency_key)
