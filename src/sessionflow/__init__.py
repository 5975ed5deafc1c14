"""sessionflow: durable, event-sourced session lifecycles with guarded transitions and real timeouts.

The public names are listed in ``__all__``; everything else is internal.
"""

from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application.manager import SYSTEM, UNSET, SessionManager, Subscriber
from sessionflow.application.ports import Change, Clock, EventStore, Query, SystemClock
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
)
from sessionflow.domain.replay import CorruptHistory, apply, replay
from sessionflow.errors import (
    ActiveSessionExists,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    SessionflowError,
    SessionNotFound,
    SessionUserMismatch,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "SYSTEM",
    "UNSET",
    "ActiveSessionExists",
    "Change",
    "Clock",
    "CompiledLifecycle",
    "ConcurrencyConflict",
    "CorruptHistory",
    "DeadlinePolicy",
    "Decision",
    "EventStore",
    "EventType",
    "FileResult",
    "InMemoryEventStore",
    "InvalidInput",
    "InvalidTransition",
    "LifecycleDefinitionError",
    "Query",
    "Session",
    "SessionEvent",
    "SessionLifecycle",
    "SessionManager",
    "SessionNote",
    "SessionNotFound",
    "SessionProgress",
    "SessionStatus",
    "SessionUserMismatch",
    "SessionflowError",
    "StoreError",
    "Subscriber",
    "SystemClock",
    "__version__",
    "apply",
    "replay",
]
