"""Log records that correlate: sessionflow's records carry ``session_id``, ``record_id``, ``trace_id`` and
``span_id`` as attributes of the standard :class:`logging.LogRecord`.

:class:`LogFields` is a :class:`logging.Filter` that :func:`install` puts on each of sessionflow's loggers
(:data:`LOGGERS`; a filter on a logger sees only the records logged to it, not to its children, hence one per
logger). It drops nothing; it sets the four attributes on every record, ``None`` where unknown, so a format
string or a JSON formatter may name them:

- ``session_id`` and ``record_id`` (the event's): given by the code that logs (``extra=``) where it knows them;
  else, inside a span that has it, the span's ``sessionflow.session.id``;
- ``trace_id`` (32 hex digits) and ``span_id`` (16): of the span current where the record was made, when there
  is one — which needs OpenTelemetry in the process: the filter looks at ``sys.modules`` first and imports
  nothing (a process that never imported ``opentelemetry.trace`` has no span).

:func:`install` is called when the managers' module is imported (:mod:`sessionflow.bootstrap`); it is
idempotent.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

__all__ = ["FIELDS", "LOGGERS", "LogFields", "install"]

#: The record attributes the filter sets.
FIELDS: Final = ("session_id", "record_id", "trace_id", "span_id")
#: sessionflow's loggers (those of ``logging.getLogger("sessionflow...")`` in the package).
LOGGERS: Final = ("sessionflow", "sessionflow.audit", "sessionflow.cleanup", "sessionflow.http",
                  "sessionflow.metrics", "sessionflow.otel", "sessionflow.store", "sessionflow.waker",
                  "sessionflow.watcher")
_TRACE_MODULE: Final = "opentelemetry.trace"
_SESSION_ATTRIBUTE: Final = "sessionflow.session.id"


class LogFields(logging.Filter):
    """Sets :data:`FIELDS` on each record (``None`` where unknown); keeps every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        session_id = fields.get("session_id")
        trace_id = span_id = None
        trace = sys.modules.get(_TRACE_MODULE)
        if trace is not None:
            span = trace.get_current_span()
            context = span.get_span_context()
            if context.is_valid:
                trace_id = format(context.trace_id, "032x")
                span_id = format(context.span_id, "016x")
                if session_id is None:
                    session_id = _span_session(span)
        fields["session_id"] = None if session_id is None else str(session_id)
        record_id = fields.get("record_id")
        fields["record_id"] = None if record_id is None else str(record_id)
        fields["trace_id"] = trace_id
        fields["span_id"] = span_id
        return True


def _span_session(span: Any) -> str | None:
    """The ``sessionflow.session.id`` attribute of ``span``, when it is a span of the SDK (which can be read)."""
    attributes = getattr(span, "attributes", None)
    if attributes is None:
        return None
    value = attributes.get(_SESSION_ATTRIBUTE)
    return value if isinstance(value, str) else None


_FILTER: Final = LogFields()


def install() -> None:
    """Put the one :class:`LogFields` filter on each of :data:`LOGGERS` (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
