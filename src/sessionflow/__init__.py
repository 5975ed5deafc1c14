"""sessionflow: durable, event-sourced session lifecycles with guarded transitions and real timeouts.

The public names are listed in ``__all__``; everything else is internal.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sessionflow.errors import (
    ActiveSessionExists,
    ArchiveError,
    BatchRejected,
    ConcurrencyConflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    OutcomeUnknown,
    SessionflowError,
    SessionNotFound,
    SessionUserMismatch,
    SettingsError,
    StoreError,
)

if TYPE_CHECKING:
    __version__: str
    from sessionflow.adapters.apscheduler import ApschedulerWaker
    from sessionflow.adapters.memory import InMemoryEventStore
    from sessionflow.aio import AsyncSessionManager
    from sessionflow.application.batches import CreateItem, SendItem
    from sessionflow.application.idempotency import IdempotencyKey
    from sessionflow.application.manager import SYSTEM, UNSET, Subscriber, SweepResult
    from sessionflow.application.ports import Change, Clock, EventStore, Query, SystemClock
    from sessionflow.application.reads import SessionPage, cursor_of
    from sessionflow.bootstrap import SessionManager
    from sessionflow.domain.deadlines import DeadlinePolicy
    from sessionflow.domain.decision import CompiledLifecycle, Decision
    from sessionflow.domain.lifecycle import SessionLifecycle
    from sessionflow.domain.models import (
        EventType,
        FileResult,
        Session,
        SessionEvent,
        SessionNote,
        SessionProgress,
        SessionStatus,
        TraceContext,
    )
    from sessionflow.domain.replay import CorruptHistory, apply, replay
    from sessionflow.settings import Settings

# Everything but the errors is imported on first use (PEP 562), so ``import sessionflow`` — which pytest
# does in every project that installs sessionflow, to load its plugin — stays cheap.
_LAZY: dict[str, str] = {
    "ApschedulerWaker": "sessionflow.adapters.apscheduler",
    "AsyncSessionManager": "sessionflow.aio",
    "InMemoryEventStore": "sessionflow.adapters.memory",
    "CreateItem": "sessionflow.application.batches",
    "SendItem": "sessionflow.application.batches",
    "IdempotencyKey": "sessionflow.application.idempotency",
    "SYSTEM": "sessionflow.application.manager",
    "SessionManager": "sessionflow.bootstrap",
    "Subscriber": "sessionflow.application.manager",
    "SweepResult": "sessionflow.application.manager",
    "UNSET": "sessionflow.application.manager",
    "Change": "sessionflow.application.ports",
    "Clock": "sessionflow.application.ports",
    "EventStore": "sessionflow.application.ports",
    "Query": "sessionflow.application.ports",
    "SystemClock": "sessionflow.application.ports",
    "SessionPage": "sessionflow.application.reads",
    "cursor_of": "sessionflow.application.reads",
    "DeadlinePolicy": "sessionflow.domain.deadlines",
    "CompiledLifecycle": "sessionflow.domain.decision",
    "Decision": "sessionflow.domain.decision",
    "SessionLifecycle": "sessionflow.domain.lifecycle",
    "EventType": "sessionflow.domain.models",
    "FileResult": "sessionflow.domain.models",
    "Session": "sessionflow.domain.models",
    "SessionEvent": "sessionflow.domain.models",
    "SessionNote": "sessionflow.domain.models",
    "SessionProgress": "sessionflow.domain.models",
    "SessionStatus": "sessionflow.domain.models",
    "TraceContext": "sessionflow.domain.models",
    "CorruptHistory": "sessionflow.domain.replay",
    "apply": "sessionflow.domain.replay",
    "replay": "sessionflow.domain.replay",
    "Settings": "sessionflow.settings",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's: pyproject.toml is the one place it is written
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("sessionflow")
        except PackageNotFoundError:  # a source tree on the path, not installed
            found = "0+unknown"
        globals()[name] = found
        return found
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionflow' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "SYSTEM",
    "UNSET",
    "ActiveSessionExists",
    "ApschedulerWaker",
    "AsyncSessionManager",
    "ArchiveError",
    "BatchRejected",
    "Change",
    "CreateItem",
    "Clock",
    "CompiledLifecycle",
    "ConcurrencyConflict",
    "CorruptHistory",
    "DeadlinePolicy",
    "Decision",
    "EventStore",
    "EventType",
    "FileResult",
    "IdempotencyKey",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InMemoryEventStore",
    "InvalidInput",
    "InvalidTransition",
    "LifecycleDefinitionError",
    "OutcomeUnknown",
    "Query",
    "Session",
    "SessionEvent",
    "SessionLifecycle",
    "SessionManager",
    "SessionNote",
    "SessionNotFound",
    "SessionPage",
    "SessionProgress",
    "SessionStatus",
    "SendItem",
    "SessionUserMismatch",
    "SessionflowError",
    "Settings",
    "SettingsError",
    "StoreError",
    "Subscriber",
    "SweepResult",
    "SystemClock",
    "TraceContext",
    "__version__",
    "apply",
    "cursor_of",
    "replay",
]
