"""``ManagerWrites``: the writes of :class:`~sessionflow.application.manager.ManagerCore`.

Every method that changes sessions: ``create`` and the batches, ``send`` and the named transitions (``start``,
``record_file``, ``add_note``, ``complete``, ``fail``, ``expire``, ``touch``), ``update``, ``migrate`` and
``delete``. Each validates its arguments at the edge (:mod:`~sessionflow.application.validation`) and hands them
to the write pipeline (:mod:`~sessionflow.application.pipeline`) or to
:mod:`~sessionflow.application.commands` / :mod:`~sessionflow.application.batches` at once (a named transition
is one method call, ``_write``, away from the pipeline).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from sessionflow.application import batches, commands
from sessionflow.application import validation as valid
from sessionflow.application.batches import CreateItem, SendItem
from sessionflow.application.idempotency import IdempotencyKey, key_request
from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.tracing import traced
from sessionflow.application.validation import UNSET
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.models import Session, SessionStatus
from sessionflow.domain.values import parse_session_id
from sessionflow.errors import InvalidInput

__all__ = ["ManagerWrites"]


class ManagerWrites:
    """The writes of the synchronous facade (a part of :class:`~sessionflow.application.manager.ManagerCore`,
    which builds what they use)."""

    _pipeline: WritePipeline
    _registry: LifecycleRegistry
    #: Time-to-live of a session created without ``ttl``.
    default_ttl: timedelta

    @traced("create")
    def create(self, *, performer_id: str, user_id: str | None = None, workspace_id: str | None = None,
               module_name: str | None = None, file_paths: Iterable[str] | None = None,
               metadata: Mapping[str, Any] | None = None, ttl: timedelta | None = None,
               lifecycle: LifecycleDefinition | str | None = None, start: bool = False,
               idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Create a session in its lifecycle's initial state (``pending`` by default).

        ``ttl`` (default: the manager's) is the session's time-to-live: the default lifecycle expires it
        ``ttl`` after creation; a custom lifecycle uses it for the state timeouts declared without a
        duration. ``lifecycle`` picks another registered definition (by name: its newest version).
        ``start=True`` creates and starts the session at once: both events are decided (the start's guards,
        ``enforce_owner``) before anything is written and appended in one transaction, in which the store
        checks ``single_active_per_user``; a refusal (:class:`~sessionflow.errors.InvalidTransition`,
        :class:`~sessionflow.errors.ActiveSessionExists` with ``session_id=None`` and the user's
        ``active_session_id``) or a store failure leaves no session and no event.
        Raises :class:`~sessionflow.errors.InvalidInput` for malformed arguments.

        ``idempotency_key`` (every write takes one): a key of the caller's choosing, kept with the write for the
        manager's ``idempotency_window``. The same write sent again with the same key (by the same performer)
        writes nothing and returns the session as the first write left it; the key sent with another request
        raises :class:`~sessionflow.errors.IdempotencyKeyReused`; while the first is still under way in this
        process, :class:`~sessionflow.errors.IdempotencyKeyInFlight`. A create's request is its arguments
        (``user_id``, ``workspace_id``, ``module_name``, ``file_paths``, ``metadata``, ``ttl``, the lifecycle's
        name and version, ``start``); see :mod:`sessionflow.application.idempotency`.
        """
        definition = valid.resolve_lifecycle(self._registry, lifecycle, self._pipeline.default_definition)
        arguments = valid.create_arguments(performer_id=performer_id, user_id=user_id, workspace_id=workspace_id,
                                           module_name=module_name, file_paths=file_paths, metadata=metadata,
                                           ttl=ttl, default_ttl=self.default_ttl)
        if not isinstance(start, bool):
            raise InvalidInput("start", f"expected True or False, got {type(start).__name__}")
        key = commands.create_request(idempotency_key, definition, arguments, start)
        return commands.create(self._pipeline, definition, arguments, start=start, key=key)

    @traced("create_many")
    def create_many(self, items: Iterable[CreateItem | Mapping[str, Any]], *,
                    performer_id: str) -> builtins.list[Session]:
        """Create a session per item, all in one transaction; returns them in item order.

        Each item is a mapping of :meth:`create`'s keyword arguments but ``performer_id`` (``user_id``,
        ``workspace_id``, ``module_name``, ``file_paths``, ``metadata``, ``ttl``, ``lifecycle``; ``{}`` is a
        session with the defaults), validated as :meth:`create` validates them. At most
        :data:`~sessionflow.application.batches.MAX_BATCH` (10,000) items. One bad item raises
        :class:`~sessionflow.errors.BatchRejected` naming it (``index``, and its own ``error``), and nothing is
        written. Subscribers hear every event after the commit; one commit for the whole batch.
        """
        return batches.create_many(self._pipeline, self._registry, items, performer_id, self.default_ttl)

    @traced("send_many")
    def send_many(self, items: Iterable[SendItem | tuple[Any, ...]], *, performer_id: str) -> builtins.list[Session]:
        """Send an event per item, all in one transaction; returns each item's session as its event left it.

        Items are :class:`~sessionflow.application.batches.SendItem` or tuples ``(session_id, event[, args[,
        expected_version]])``, each decided as :meth:`send_with` decides it, in order: a later item of the same
        session is decided on the state the earlier one leads to (its ``expected_version``, if given, is the
        version that earlier item leaves). An overdue session's expiry is recorded first, as on a single write.
        One refused item raises :class:`~sessionflow.errors.BatchRejected` naming it (``index``, and its own
        ``error``: ``InvalidInput``, ``SessionNotFound``, ``InvalidTransition``, ``ConcurrencyConflict``,
        ``ActiveSessionExists``, ...), and nothing is written.
        """
        return batches.send_many(self._pipeline, items, performer_id)

    def send(self, session_id: UUID | str, event: str, *, performer_id: str, expected_version: int | None = None,
             idempotency_key: str | IdempotencyKey | None = None, **args: Any) -> Session:
        """Send any event of the session's lifecycle, with keyword arguments for its guards and validators.

        The arguments must form a JSON object: they are recorded in the event's payload (``args``). Names
        the engine passes itself (``session``, ``model``, ``now``, ``event``, ``source``, ...) are refused.
        ``send(id, "start", performer_id=...)`` is the same as :meth:`start`.
        """
        return self.send_with(session_id, event, args, performer_id=performer_id,
                              expected_version=expected_version, idempotency_key=idempotency_key)

    @traced("send")
    def send_with(self, session_id: UUID | str, event: str, args: Mapping[str, Any] | None = None, *,
                  performer_id: str, expected_version: int | None = None,
                  idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """:meth:`send` with the event's arguments as a mapping (for arguments from outside, e.g. HTTP)."""
        arguments, payload = valid.event_arguments(event, args)
        return self._write(session_id, event, performer_id, expected_version, payload=payload, args=arguments,
                           key=idempotency_key)

    def _write(self, session_id: Any, machine_event: str, performer_id: Any, expected_version: Any, *,
               payload: dict[str, Any] | None = None, args: Mapping[str, Any] | None = None,
               prepare: Callable[[Session], None] | None = None, key: Any = None) -> Session:
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        request = commands.event_request(key, performer, machine_event, sid, payload, args, expected_version)
        return self._pipeline.write(sid, machine_event, performer, payload=payload, args=args,
                                    expected_version=expected_version, prepare=prepare, key=request)

    @traced("migrate")
    def migrate(self, session_id: UUID | str, *, performer_id: str, to_version: int | None = None,
                expected_version: int | None = None, idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Move a session to a newer version of its lifecycle (default: the newest), mapping its state
        through the mapping the new version declares for the old one (``migrations``). Recorded as a
        ``migrated`` event; a session without such a mapping keeps running under its own version.
        """
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        key = key_request(idempotency_key, performer, "migrate", sid,
                          {"to_version": to_version, "expected_version": expected_version})
        return commands.migrate(self._pipeline, sid, performer, to_version, expected_version, key)

    @traced("start", event="start")
    def start(self, session_id: UUID | str, *, performer_id: str,
              expected_version: int | None = None,
              idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """``pending`` → ``in_progress``. Refused once the deadline has passed."""
        return self._write(session_id, "start", performer_id, expected_version, key=idempotency_key)

    @traced("record_file", event="record_file")
    def record_file(self, session_id: UUID | str, path: str, error: str | None = None, *,
                    performer_id: str, expected_version: int | None = None,
                    idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Record the outcome of one of the session's files: processed, or failed with ``error``.

        ``path`` must be one of the session's ``file_paths`` and not recorded yet.
        """
        file_path, err = valid.file_outcome(path, error)
        return self._write(session_id, "record_file", performer_id, expected_version,
                           payload={"path": file_path, "error": err}, prepare=commands.record_file_check(file_path),
                           key=idempotency_key)

    @traced("add_note", event="add_note")
    def add_note(self, session_id: UUID | str, *, file_path: str, status: str, memory_id: str | None = None,
                 performer_id: str, expected_version: int | None = None,
                 idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Attach a note (``file_path``, ``memory_id``, ``status``) to a live session."""
        payload = valid.note_payload(file_path, memory_id, status)
        return self._write(session_id, "add_note", performer_id, expected_version, payload=payload,
                           key=idempotency_key)

    @traced("complete", event="complete")
    def complete(self, session_id: UUID | str, *, performer_id: str,
                 expected_version: int | None = None,
              idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """``in_progress`` → ``completed``, once every file is processed or failed."""
        return self._write(session_id, "complete", performer_id, expected_version, key=idempotency_key)

    @traced("fail", event="fail")
    def fail(self, session_id: UUID | str, *, reason: str, performer_id: str,
             expected_version: int | None = None, idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """``pending`` | ``in_progress`` → ``failed``, with a non-empty ``reason``."""
        text = valid.fail_reason(reason)
        return self._write(session_id, "fail", performer_id, expected_version, payload={"reason": text.strip()},
                           args={"reason": text}, key=idempotency_key)

    @traced("expire", event="expire")
    def expire(self, session_id: UUID | str) -> Session:
        """Expire an overdue live session now, as ``"system"``.

        Raises :class:`~sessionflow.errors.InvalidTransition` if it is not yet due or already terminal.
        """
        return commands.expire(self._pipeline, parse_session_id(session_id))

    @traced("touch", event="touch")
    def touch(self, session_id: UUID | str, *, performer_id: str,
              expected_version: int | None = None,
              idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Extend the deadline to ``now`` + the session's TTL (never beyond its maximum lifetime)."""
        return self._write(session_id, "touch", performer_id, expected_version, key=idempotency_key)

    @traced("update")
    def update(self, session_id: UUID | str, *, performer_id: str, expected_version: int | None = None,
               current_file: str | Any | None = UNSET, metadata: Mapping[str, Any] | Any = UNSET,
               status: SessionStatus | str | None = None, reason: str | None = None,
               idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Change ``current_file`` and/or replace ``metadata``, and/or move to ``status``.

        A status change is dispatched through the lifecycle with its guards (``in_progress`` → start,
        ``completed`` → complete, ``failed`` → fail with ``reason``, ``expired`` → expire), never written
        directly. Field changes and the status change are appended together, atomically, as an
        ``updated`` event followed by the transition's event.
        """
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        fields, target, reason_text = valid.update_fields(sid, current_file, metadata, status, reason)
        key = key_request(idempotency_key, performer, "update", sid,
                          {"fields": fields, "status": target, "reason": reason_text,
                           "expected_version": expected_version})
        return commands.update(self._pipeline, sid, performer, expected_version, fields, target, reason_text, key)

    @traced("delete")
    def delete(self, session_id: UUID | str, *, performer_id: str,
               expected_version: int | None = None, idempotency_key: str | IdempotencyKey | None = None) -> Session:
        """Delete a session: it is gone from :meth:`get` and :meth:`list`; its history stays readable."""
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        key = key_request(idempotency_key, performer, "delete", sid, {"expected_version": expected_version})
        return commands.delete(self._pipeline, sid, performer, expected_version, key)
