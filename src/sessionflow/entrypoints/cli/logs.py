"""The engine's log records while a command runs: on stderr, one line each.

Owns :func:`engine_logging`, which a command runs inside, and the handler and formatter it installs on the
``sessionflow`` logger (INFO records too with ``--verbose``; an exception as ``Type: message``, never a
traceback). Nothing is left installed once the command is done.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from sessionflow.entrypoints.cli.errors import one_line

__all__ = ["OneLineFormatter", "StderrHandler", "engine_logging"]


class OneLineFormatter(logging.Formatter):
    """Log records on one line each: an exception shows as ``Type: message``, never as a traceback."""

    def formatException(self, ei: Any) -> str:
        kind, value = ei[0], ei[1]
        return f"[{getattr(kind, '__name__', 'error')}: {one_line(str(value))}]"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return " ".join(text.splitlines())


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def engine_logging(verbose: bool) -> Iterator[None]:
    """While a command runs, the engine's log records go to stderr one line each (INFO too with -v)."""
    logger = logging.getLogger("sessionflow")
    handler = StderrHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
