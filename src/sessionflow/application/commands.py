"""The writes that are more than one event sent to the lifecycle: create, update, migrate, delete, expire.

Each function takes validated arguments (:mod:`sessionflow.application.validation`) and runs its change
through the :class:`~sessionflow.application.pipeline.WritePipeline`; the simple transitions (``start``,
``complete``, ``fail``, ``touch``, ``record_file``, ``add_note``, ``send``) go straight to
:meth:`~sessionflow.application.pipeline.WritePipeline.write`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sessionflow.application.idempotency import IdempotencyRecord, KeyRequest, key_request
from sessionflow.application.pipeline import SYSTEM, WritePipeline
from sessionflow.application.ports import Change
from sessionflow.application.validation import CreateArguments, as_state
from sessionflow.domain.deadlines import initial_deadline
from sessionflow.domain.definitions import SESSION_DEFINITION, LifecycleDefinition
from sessionflow.domain.models import EventType, Session, SessionEvent, SessionStatus
from sessionflow.domain.replay import apply
from sessionflow.domain.values import format_timestamp, new_uuid4
from sessionflow.errors import ActiveSessionExists, InvalidInput, InvalidTransition, SessionUserMismatch

__all__ = ["create", "create_request", "creation", "delete", "event_request", "expire", "migrate",
           "record_file_check", "started_creation", "update"]

_STATUS_EVENTS: Final = {
    SessionStatus.IN_PROGRESS: "start",
    SessionStatus.COMPLETED: "complete",
    SessionStatus.FAILED: "fail",
    SessionStatus.EXPIRED: "expire",
}


def create_request(key: Any, definition: LifecycleDefinition, arguments: CreateArguments,
                   start: bool) -> KeyRequest | None:
    """The idempotency request of a create (``None`` without a key): its fingerprint covers the created event's
    arguments (``user_id``, ``workspace_id``, ``module_name``, ``file_paths``, ``metadata``), ``ttl``, the
    lifecycle's name and version and ``start``."""
    if key is None:
        return None
    return key_request(key, arguments.performer, "create", None,
                       {**arguments.payload, "ttl": arguments.ttl, "lifecycle": definition.name,
                        "lifecycle_version": definition.version, "start": start})


def event_request(key: Any, performer: str, event: str, sid: UUID, payload: Mapping[str, Any] | None,
                  args: Mapping[str, Any] | None, expected_version: int | None) -> KeyRequest | None:
    """The idempotency request of an event sent to a session (``None`` without a key): its fingerprint covers
    the event's name, the session id, its recorded payload and arguments and ``expected_version``."""
    if key is None:
        return None
    return key_request(key, performer, event, sid,
                       {"payload": payload or {}, "args": args or {}, "expected_version": expected_version})


def create(pipeline: WritePipeline, definition: LifecycleDefinition, arguments: CreateArguments, *,
           start: bool = False, key: KeyRequest | None = None) -> Session:
    """A new session in ``definition``'s initial state, its deadline and cap set by the policies; with
    ``start``, created and started in one change (see :func:`started_creation`). With ``key``, under that
    idempotency key (:meth:`WritePipeline.keyed`)."""
    if key is not None:
        return pipeline.keyed(key, lambda record, now: _create(pipeline, definition, arguments, start, record, now))
    return _create(pipeline, definition, arguments, start, None, pipeline.now())


def _create(pipeline: WritePipeline, definition: LifecycleDefinition, arguments: CreateArguments, start: bool,
            record: IdempotencyRecord | None, now: datetime) -> Session:
    change = creation(pipeline, definition, arguments, now)
    if not start:
        pipeline.commit_keyed(change, record)
        return change.session
    change = started_creation(pipeline, change, now)
    try:
        pipeline.commit_keyed(change, record)
    except ActiveSessionExists as refused:  # the new session does not exist: name only the user's active one
        raise ActiveSessionExists(None, user_id=refused.user_id,
                                  active_session_id=refused.active_session_id) from None
    return change.session


def started_creation(pipeline: WritePipeline, created: Change, now: datetime) -> Change:
    """``created`` (a creation change) followed by its ``start`` event, as ONE change of two events: the
    lifecycle decides the start (its guards, the owner check) before anything is written, the store checks
    ``single_active_per_user`` in the same transaction, and a refusal or a failure leaves no session at all."""
    session = created.session
    performer = created.events[0].performer_id
    try:
        pipeline.check_owner(session, performer)
    except SessionUserMismatch as refused:  # the new session does not exist: name none
        raise SessionUserMismatch(None, owner=refused.owner, performer_id=refused.performer_id) from None
    event = pipeline.transition(session, "start", performer, now, {})
    start = pipeline.transition_change(session, event, now)
    return Change(start.session, (*created.events, event), 0, exclusive_user=start.exclusive_user, decided_at=now)


def creation(pipeline: WritePipeline, definition: LifecycleDefinition, arguments: CreateArguments,
             now: datetime) -> Change:
    """The change creating a session in ``definition``'s initial state at ``now`` (not committed)."""
    payload = arguments.payload
    initial = definition.initial_state
    timeout = definition.timeouts.get(initial)
    first = timeout.after if timeout is not None and timeout.after is not None else arguments.ttl
    expires_at, cap = initial_deadline(now, first, pipeline.deadlines.max_lifetime)
    payload["ttl_seconds"] = arguments.ttl.total_seconds()
    payload["expires_at"] = format_timestamp(expires_at) if timeout is not None else None
    payload["max_expires_at"] = format_timestamp(cap) if cap is not None else None
    if definition is not SESSION_DEFINITION:
        payload["lifecycle"] = definition.name
        payload["lifecycle_version"] = definition.version
    sid = new_uuid4()
    event = pipeline.event(None, sid, 1, EventType.CREATED, as_state(initial), arguments.performer, now, payload)
    return Change(apply(None, event), (event,), 0)


def expire(pipeline: WritePipeline, sid: UUID) -> Session:
    """Fire the timeout of an overdue live session now; the lifecycle says why when it refuses."""
    now = pipeline.now()
    session = pipeline.load(sid, now, lazy_expiry=False)
    change = pipeline.expiry_change(session, now)
    if change is None:  # let the lifecycle say why
        pipeline.transition(session, "expire", SYSTEM, now, {})
        raise AssertionError("unreachable: expiry refused but the lifecycle allowed it")  # pragma: no cover
    pipeline.delivery.commit(change)
    return change.session


def delete(pipeline: WritePipeline, sid: UUID, performer: str, expected_version: int | None,
           key: KeyRequest | None = None) -> Session:
    """Record a ``deleted`` event (allowed in any state)."""

    def build(session: Session, now: datetime) -> Change:
        event = pipeline.event(session, sid, session.version + 1, EventType.DELETED, session.status, performer,
                               now, {})
        return Change(apply(session, event), (event,), session.version, previous=session)

    return pipeline.change(sid, performer, expected_version, build, lazy_expiry=False, key=key)


def migrate(pipeline: WritePipeline, sid: UUID, performer: str, to_version: int | None,
            expected_version: int | None, key: KeyRequest | None = None) -> Session:
    """Move a session to a newer version of its lifecycle through the mapping that version declares."""
    registry = pipeline.registry

    def build(session: Session, now: datetime) -> Change:
        current = pipeline.definition(session)
        target = (registry.get(session.lifecycle) if to_version is None
                  else registry.get(session.lifecycle, to_version))
        if target.version <= current.version:
            raise InvalidInput("to_version", f"session {sid} already runs version {current.version}",
                               session_id=sid)
        mapping = target.migrations.get(current.version)
        if mapping is None:
            raise InvalidTransition(sid, state=str(session.status), event="migrate",
                                    reason=f"version {target.version} declares no migration from "
                                           f"version {current.version}")
        state = mapping.get(str(session.status), str(session.status))
        if state not in target.compiled.state_set:
            raise InvalidTransition(sid, state=str(session.status), event="migrate",
                                    reason=f"state {state!r} does not exist in version {target.version}")
        payload: dict[str, Any] = {"from_version": current.version, "to_version": target.version}
        migrated = session.evolve(lifecycle_version=target.version, status=state)
        if not session.is_terminal:
            pipeline.deadline_payload(target, migrated, now, state, payload, touch=False)
        event = pipeline.event(session, sid, session.version + 1, EventType.MIGRATED, as_state(state),
                               performer, now, payload)
        return Change(apply(session, event), (event,), session.version, previous=session)

    return pipeline.change(sid, performer, expected_version, build, lazy_expiry=False, key=key)


def _event_leading_to(pipeline: WritePipeline, session: Session, current: Session, target: str) -> str:
    """The one event of the session's lifecycle that leads from its state to ``target``."""
    definition = pipeline.definition(session)
    if target not in definition.compiled.state_set:
        raise InvalidInput("status", f"unknown status {target[:40]!r}", session_id=session.id)
    if definition is SESSION_DEFINITION:
        event = _STATUS_EVENTS.get(SessionStatus(target))
        if event is not None:
            return event
        candidates: list[str] = []
    else:
        state = str(current.status)
        candidates = [e for e in definition.compiled.allowed_events(state)
                      if any(t.target == target and not t.internal
                             for t in definition.compiled.transitions(state, e))]
        if len(candidates) == 1:
            return candidates[0]
    if len(candidates) > 1:
        raise InvalidInput("status", f"several events lead to {target!r} ({', '.join(candidates)}): "
                                     "send the one you mean", session_id=session.id)
    raise InvalidTransition(session.id, state=str(current.status), event=f"update(status={target})",
                            reason=f"no event leads to {target!r}")


def update(pipeline: WritePipeline, sid: UUID, performer: str, expected_version: int | None,
           fields: dict[str, Any], target: str | None, reason: str | None, key: KeyRequest | None = None) -> Session:
    """An ``updated`` event for ``fields`` and/or the lifecycle's event leading to ``target``, together."""

    def build(session: Session, now: datetime) -> Change:
        events: list[SessionEvent] = []
        current = session
        if fields:
            event = pipeline.transition(current, "update", performer, now, dict(fields))
            events.append(event)
            current = apply(current, event)
        if target is not None:
            machine_event = _event_leading_to(pipeline, session, current, target)
            payload: dict[str, Any] = {}
            args: dict[str, Any] = {}
            if machine_event == "fail":
                payload["reason"] = (reason or "").strip()
                args["reason"] = reason or ""
            actor = SYSTEM if machine_event == "expire" else performer
            event = pipeline.transition(current, machine_event, actor, now, payload, args)
            events.append(event)
            current = apply(current, event)
        exclusive = (session.user_id if pipeline.single_active_per_user and current.status == "in_progress"
                     and session.status != "in_progress" else None)
        return Change(current, tuple(events), session.version, exclusive_user=exclusive, decided_at=now,
                      previous=session)

    return pipeline.change(sid, performer, expected_version, build, key=key)


def record_file_check(path: str) -> Callable[[Session], None]:
    """The check :meth:`~sessionflow.SessionManager.record_file` runs once the lifecycle allowed it."""

    def check(session: Session) -> None:
        if path not in session.file_paths:
            raise InvalidInput("path", f"{path!r} is not one of the session's files", session_id=session.id)
        if any(r.path == path for r in session.file_results):
            raise InvalidInput("path", f"{path!r} was already recorded", session_id=session.id)

    return check

